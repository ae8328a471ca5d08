// Package conditionscheck holds a static check of the condition vocabulary
// (api/v1alpha1/conditions.go) against the code that writes conditions: it reads the Go source
// of controllers/ and hostagent/ and fails when a package writes a condition type it does not
// own, a reason the table does not list for that condition (or with another status), or a
// reason spelt as a string instead of the table's constant. A static check sees every write
// site, also those no test drives.
package conditionscheck
