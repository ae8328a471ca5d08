// Package admission holds xenclone's admission policies (YAML, applied with
// `kubectl apply -k config/admission`) and the tests that prove them against a real
// kube-apiserver: a host agent can change only the objects of its own node.
package admission
