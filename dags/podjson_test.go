package dags

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// The *_seconds fields of a pod spec are seconds in rendered fields and
// the API, and read back the same; specs recorded in nanoseconds by
// earlier versions still read right.
func TestPodSpecSecondsInJSON(t *testing.T) {
	s := PodSpec{Image: "etl", StartupTimeout: 15 * time.Second, ScheduleTimeout: 1500 * time.Millisecond, GetLogs: true}
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"startup_timeout_seconds":15,`) || !strings.Contains(string(data), `"schedule_timeout_seconds":1.5`) {
		t.Fatalf("JSON: %s", data)
	}
	back, err := DecodeSpec("KubernetesPodOperator", data)
	if err != nil {
		t.Fatal(err)
	}
	if p := back.(PodSpec); p.StartupTimeout != 15*time.Second || p.ScheduleTimeout != 1500*time.Millisecond || p.Image != "etl" || !p.GetLogs {
		t.Fatalf("read back: %+v", p)
	}
	old, err := DecodeSpec("KubernetesPodOperator", []byte(`{"image": "etl", "startup_timeout_seconds": 120000000000}`))
	if err != nil || old.(PodSpec).StartupTimeout != 120*time.Second {
		t.Fatalf("a spec recorded in nanoseconds: %+v %v", old, err)
	}
}
