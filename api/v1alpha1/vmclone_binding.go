package v1alpha1

// Field paths the API server can select VMClones on (the CRD's selectableFields). A host
// agent's watch selects on NodeNameField, so binding a clone is one status write: no label
// has to follow it.
const (
	NodeNameField = "status.nodeName"
	TemplateField = "spec.templateRef.name"
)

// Bound says whether the clone is bound to a host.
func (c *VMClone) Bound() bool { return c.Status.NodeName != "" }

// HostReportCurrent says whether the host-side part of the status (phase, message, domain,
// volume, the agent's conditions and timestamps) describes the clone's current binding. After
// a reschedule the old host's report stays in place until the new host's agent replaces it,
// and must count for nothing meanwhile.
func (c *VMClone) HostReportCurrent() bool {
	return c.Bound() && c.Status.ObservedBindingGeneration == c.Status.BindingGeneration
}
