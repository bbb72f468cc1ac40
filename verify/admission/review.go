// Package admission is mlenv's Kubernetes validating admission webhook:
// AdmissionReview v1 in, a verify verdict for every container image of a
// Pod (or of a workload's pod template) out.
package admission

import (
	"encoding/json"
	"fmt"
)

// The admission.k8s.io/v1 wire types, only the fields mlenv reads or
// writes. Their JSON is a stable Kubernetes API; declaring them here
// keeps k8s.io/api and k8s.io/apimachinery (dozens of packages) out of
// the binary for a dozen fields.

// Review is an AdmissionReview.
type Review struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	Request    *Request  `json:"request,omitempty"`
	Response   *Response `json:"response,omitempty"`
}

// Request is AdmissionRequest.
type Request struct {
	UID       string           `json:"uid"`
	Kind      GroupVersionKind `json:"kind"`
	Namespace string           `json:"namespace,omitempty"`
	Name      string           `json:"name,omitempty"`
	Operation string           `json:"operation,omitempty"`
	Object    json.RawMessage  `json:"object,omitempty"`
	DryRun    *bool            `json:"dryRun,omitempty"`
}

// GroupVersionKind names the object's type.
type GroupVersionKind struct {
	Group   string `json:"group"`
	Version string `json:"version"`
	Kind    string `json:"kind"`
}

// Response is AdmissionResponse.
type Response struct {
	UID      string   `json:"uid"`
	Allowed  bool     `json:"allowed"`
	Result   *Status  `json:"status,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

// Status is metav1.Status, as much as a denial needs.
type Status struct {
	Code    int32  `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

type podSpec struct {
	Containers          []container `json:"containers"`
	InitContainers      []container `json:"initContainers"`
	EphemeralContainers []container `json:"ephemeralContainers"`
}

type container struct {
	Name  string `json:"name"`
	Image string `json:"image"`
}

// ContainerImage is one image to check, named by where it sits.
type ContainerImage struct {
	Where string // "initContainers[setup]"
	Image string
}

// Images lists the container images of a Pod or of the pod template of a
// Deployment, StatefulSet, DaemonSet, ReplicaSet, Job or CronJob. Other
// kinds hold no pod spec: ok is false.
func Images(kind string, object []byte) (images []ContainerImage, ok bool, err error) {
	var spec podSpec
	var target any
	switch kind {
	case "Pod":
		var o struct {
			Spec *podSpec `json:"spec"`
		}
		o.Spec, target = &spec, &o
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "ReplicationController":
		var o struct {
			Spec struct {
				Template struct {
					Spec *podSpec `json:"spec"`
				} `json:"template"`
			} `json:"spec"`
		}
		o.Spec.Template.Spec, target = &spec, &o
	case "CronJob":
		var o struct {
			Spec struct {
				JobTemplate struct {
					Spec struct {
						Template struct {
							Spec *podSpec `json:"spec"`
						} `json:"template"`
					} `json:"spec"`
				} `json:"jobTemplate"`
			} `json:"spec"`
		}
		o.Spec.JobTemplate.Spec.Template.Spec, target = &spec, &o
	default:
		return nil, false, nil
	}
	if err := json.Unmarshal(object, target); err != nil {
		return nil, true, fmt.Errorf("request.object is not a %s: %w", kind, err)
	}
	for _, g := range []struct {
		field string
		list  []container
	}{{"initContainers", spec.InitContainers}, {"containers", spec.Containers}, {"ephemeralContainers", spec.EphemeralContainers}} {
		for _, c := range g.list {
			images = append(images, ContainerImage{Where: fmt.Sprintf("%s[%s]", g.field, c.Name), Image: c.Image})
		}
	}
	return images, true, nil
}
