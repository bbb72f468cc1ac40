package admission

import (
	"fmt"
	"testing"
)

func TestImagesOfEachKind(t *testing.T) {
	spec := `{"initContainers":[{"name":"i","image":"a@sha256:1"}],"containers":[{"name":"c","image":"b:1"}]}`
	for kind, obj := range map[string]string{
		"Pod":         `{"spec":` + spec + `}`,
		"Deployment":  `{"spec":{"template":{"spec":` + spec + `}}}`,
		"StatefulSet": `{"spec":{"template":{"spec":` + spec + `}}}`,
		"DaemonSet":   `{"spec":{"template":{"spec":` + spec + `}}}`,
		"ReplicaSet":  `{"spec":{"template":{"spec":` + spec + `}}}`,
		"Job":         `{"spec":{"template":{"spec":` + spec + `}}}`,
		"CronJob":     `{"spec":{"jobTemplate":{"spec":{"template":{"spec":` + spec + `}}}}}`,
	} {
		imgs, ok, err := Images(kind, []byte(obj))
		if !ok || err != nil || fmt.Sprint(imgs) != "[{initContainers[i] a@sha256:1} {containers[c] b:1}]" {
			t.Errorf("%s: %v %v %v", kind, imgs, ok, err)
		}
	}
	if _, ok, _ := Images("ConfigMap", []byte(`{}`)); ok {
		t.Error("a ConfigMap has no pod spec")
	}
}

func FuzzImages(f *testing.F) {
	f.Add("Pod", []byte(`{"spec":{"containers":[{"name":"c","image":"x"}]}}`))
	f.Add("CronJob", []byte(`{"spec":{"jobTemplate":null}}`))
	f.Fuzz(func(t *testing.T, kind string, b []byte) {
		imgs, ok, err := Images(kind, b)
		if !ok && (err != nil || imgs != nil) {
			t.Error("a kind without a pod spec gave images or an error")
		}
	})
}
