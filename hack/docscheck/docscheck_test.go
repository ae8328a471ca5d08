package docscheck

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const (
	root      = "../.."
	smokePath = "hack/playground-smoke.sh"
	allowPath = "hack/docscheck/allowlist.yaml"
)

// docCommands reads every checked doc; a command printed in several places is kept once, at
// its first place.
func docCommands(t *testing.T) ([]Command, map[string]Command) {
	t.Helper()
	files, err := DocFiles(root)
	if err != nil {
		t.Fatal(err)
	}
	var list []Command
	byText := map[string]Command{}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range Extract(f, string(data)) {
			if _, seen := byText[c.Text]; !seen {
				byText[c.Text] = c
				list = append(list, c)
			}
		}
	}
	if len(list) < 20 {
		t.Fatalf("only %d commands found in %v: is the extraction broken?", len(list), files)
	}
	return list, byText
}

func smokeCommands(t *testing.T) []SmokeCommand {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, smokePath))
	if err != nil {
		t.Fatal(err)
	}
	cmds, err := SmokeCommands(string(data))
	if err != nil {
		t.Fatalf("%s: %v", smokePath, err)
	}
	return cmds
}

// TestDocCommandsRunOrAllowed: each command in a ```sh/```bash/```shell/```console block of
// README.md and docs/*.md is run by hack/playground-smoke.sh or allowlisted with a reason; the
// smoke script and the allowlist name no command the docs do not print (so neither goes stale
// when a doc changes).
func TestDocCommandsRunOrAllowed(t *testing.T) {
	list, docs := docCommands(t)
	smoke := map[string]SmokeCommand{}
	for _, s := range smokeCommands(t) {
		smoke[s.Text] = s
		if _, ok := docs[s.Text]; !ok {
			t.Errorf("%s:%d runs a command no doc prints (was the doc changed?):\n%s", smokePath, s.Line, s.Text)
		}
		for k := range s.Subs {
			if !regexp.MustCompile(`\b` + k + `\b`).MatchString(s.Text) {
				t.Errorf("%s:%d: placeholder %s is not in the command:\n%s", smokePath, s.Line, k, s.Text)
			}
		}
	}
	allow, err := LoadAllowlist(filepath.Join(root, allowPath))
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{}
	for _, a := range allow {
		switch {
		case strings.TrimSpace(a.Reason) == "" || strings.Contains(strings.TrimSpace(a.Reason), "\n"):
			t.Errorf("%s: %q needs a one-line reason", allowPath, a.Command)
		case allowed[a.Command]:
			t.Errorf("%s: %q listed twice", allowPath, a.Command)
		}
		allowed[a.Command] = true
		if _, ok := docs[a.Command]; !ok {
			t.Errorf("%s: no doc prints %q any more: remove it", allowPath, a.Command)
		}
		if s, ok := smoke[a.Command]; ok {
			t.Errorf("%s: %q is run by %s:%d: remove it from the allowlist", allowPath, a.Command, smokePath, s.Line)
		}
	}
	run := 0
	for _, c := range list {
		if _, ok := smoke[c.Text]; ok {
			run++
			continue
		}
		if !allowed[c.Text] {
			t.Errorf("%s\n  is neither run by %s (doc '...' or doc <<'CMD') nor listed with a reason in %s", c, smokePath, allowPath)
		}
	}
	t.Logf("%d documented commands: %d run by the smoke script, %d allowlisted", len(list), run, len(allow))
}

// TestSmokeRanEveryDocCommand runs at the end of hack/playground-smoke.sh, with the trace of
// what its doc helpers ran: each documented command that is not allowlisted must be in it.
func TestSmokeRanEveryDocCommand(t *testing.T) {
	trace := os.Getenv("DOCSCHECK_TRACE")
	if trace == "" {
		t.Skip("DOCSCHECK_TRACE is not set: hack/playground-smoke.sh runs this test after its walkthrough")
	}
	ran, err := ReadTrace(trace)
	if err != nil {
		t.Fatal(err)
	}
	allow, err := LoadAllowlist(filepath.Join(root, allowPath))
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{}
	for _, a := range allow {
		allowed[a.Command] = true
	}
	list, _ := docCommands(t)
	n := 0
	for _, c := range list {
		if allowed[c.Text] {
			continue
		}
		n++
		if !ran[c.Text] {
			t.Errorf("%s\n  was not run by this smoke run", c)
		}
	}
	t.Logf("%d documented commands ran", n)
}

func TestExtract(t *testing.T) {
	md := "# T\n\n```sh\n" +
		"make run     # a comment\n" +
		"kubectl get x \\\n    -o wide\n" +
		"\n" +
		"kubectl get a -o name |\nwhile read -r n; do\n  echo \"$n # not a comment\"\ndone\n" +
		"kubectl apply -f - <<'EOF'\nkind: X\n# yaml comment kept\nspec:\n  a: 1\nEOF\n" +
		"kubectl wait --for=condition=Ready x/y\n" +
		"```\n\n" +
		"```yaml\nkubectl not-a-command\n```\n\n" +
		"````console\n$ kubectl get y\nNAME   AGE\ny      1s\n$ echo 'a#b' # c\n````\n\n" +
		"```\nunlabelled block: no commands\n```\n"
	got := Extract("x.md", md)
	want := []Command{
		{"x.md", 4, "make run"},
		{"x.md", 5, "kubectl get x -o wide"},
		{"x.md", 8, "kubectl get a -o name |\nwhile read -r n; do\n  echo \"$n # not a comment\"\ndone"},
		{"x.md", 12, "kubectl apply -f - <<'EOF'\nkind: X\n# yaml comment kept\nspec:\n  a: 1\nEOF"},
		{"x.md", 18, "kubectl wait --for=condition=Ready x/y"},
		{"x.md", 26, "kubectl get y"},
		{"x.md", 29, "echo 'a#b'"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d commands, want %d:\n%q", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("command %d:\n got %q\nwant %q", i, got[i], want[i])
		}
	}
}

func TestSmokeCommands(t *testing.T) {
	script := "doc 'kubectl get x'   # runs\n" +
		"out=$(doc NAME=web-1 'kubectl describe vmclone NAME' 2>&1)\n" +
		"# doc 'commented out'\n" +
		"doc <<'CMD'\nkubectl patch x --type merge -p '{\"a\":1}'\nCMD\n" +
		"(cd \"$repo\" && doc_bg 'make run')\n"
	got, err := SmokeCommands(script)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"kubectl get x", "kubectl describe vmclone NAME", `kubectl patch x --type merge -p '{"a":1}'`, "make run"}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %q", got, want)
	}
	for i, w := range want {
		if got[i].Text != w {
			t.Errorf("command %d = %q, want %q", i, got[i].Text, w)
		}
	}
	if got[1].Subs["NAME"] != "web-1" {
		t.Errorf("subs = %v, want NAME=web-1", got[1].Subs)
	}
	if _, err := SmokeCommands("doc <<'CMD'\nkubectl get x\n"); err == nil {
		t.Error("an unclosed heredoc must be an error")
	}
}
