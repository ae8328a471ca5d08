package hostagent

import (
	"net/http"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// MapperProvider is the agent manager's REST mapper (ctrl.Options.MapperProvider): the kinds
// the agent uses are mapped without asking the API server, anything else by discovery. With
// the default, discovery-only mapper, setting up the agent's controllers needs the API server,
// so an agent started while its host is cut off would exit before it could fence from its
// journal (fencejournal.go), and restart, and exit, while its Reschedule clones run on.
func MapperProvider(cfg *rest.Config, httpClient *http.Client) (meta.RESTMapper, error) {
	dynamic, err := apiutil.NewDynamicRESTMapper(cfg, httpClient)
	if err != nil {
		return nil, err
	}
	static := meta.NewDefaultRESTMapper(nil)
	for gvk, scope := range map[schema.GroupVersionKind]meta.RESTScope{
		vmv1alpha1.GroupVersion.WithKind("VMClone"):         meta.RESTScopeNamespace,
		vmv1alpha1.GroupVersion.WithKind("VMClonePool"):     meta.RESTScopeNamespace,
		vmv1alpha1.GroupVersion.WithKind("VMTemplate"):      meta.RESTScopeRoot,
		vmv1alpha1.GroupVersion.WithKind("XenHost"):         meta.RESTScopeRoot,
		coordinationv1.SchemeGroupVersion.WithKind("Lease"): meta.RESTScopeNamespace,
		corev1.SchemeGroupVersion.WithKind("Secret"):        meta.RESTScopeNamespace,
		corev1.SchemeGroupVersion.WithKind("Event"):         meta.RESTScopeNamespace,
		eventsv1.SchemeGroupVersion.WithKind("Event"):       meta.RESTScopeNamespace,
	} {
		static.Add(gvk, scope)
	}
	return staticFirst{static: static, RESTMapper: dynamic}, nil
}

// staticFirst answers from static what it knows and from the embedded mapper the rest.
type staticFirst struct {
	static meta.RESTMapper
	meta.RESTMapper
}

func (m staticFirst) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	if r, err := m.static.RESTMapping(gk, versions...); err == nil {
		return r, nil
	}
	return m.RESTMapper.RESTMapping(gk, versions...)
}

func (m staticFirst) RESTMappings(gk schema.GroupKind, versions ...string) ([]*meta.RESTMapping, error) {
	if r, err := m.static.RESTMappings(gk, versions...); err == nil && len(r) > 0 {
		return r, nil
	}
	return m.RESTMapper.RESTMappings(gk, versions...)
}

func (m staticFirst) KindFor(resource schema.GroupVersionResource) (schema.GroupVersionKind, error) {
	if k, err := m.static.KindFor(resource); err == nil {
		return k, nil
	}
	return m.RESTMapper.KindFor(resource)
}
