package v1alpha1

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestReschedulesOnNodeLoss: the field decides when set; the deprecated annotation only
// without it. The controller moves and the agent fences by this one answer.
func TestReschedulesOnNodeLoss(t *testing.T) {
	ann := map[string]string{OnNodeLostAnnotation: OnNodeLostRescheduleValue}
	for _, tc := range []struct {
		name string
		p    *Placement
		ann  map[string]string
		want bool
	}{
		{"nothing", nil, nil, false},
		{"field Reschedule", &Placement{OnNodeLost: NodeLostReschedule}, nil, true},
		{"field Wait beats the annotation", &Placement{OnNodeLost: NodeLostWait}, ann, false},
		{"annotation alone", nil, ann, true},
		{"annotation with an empty field", &Placement{}, ann, true},
		{"annotation with another value", nil, map[string]string{OnNodeLostAnnotation: "yes"}, false},
	} {
		c := &VMClone{ObjectMeta: metav1.ObjectMeta{Annotations: tc.ann}, Spec: VMCloneSpec{Placement: tc.p}}
		if got := ReschedulesOnNodeLoss(c); got != tc.want {
			t.Errorf("%s: ReschedulesOnNodeLoss = %v, want %v", tc.name, got, tc.want)
		}
	}
}
