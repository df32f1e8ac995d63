// Package kubernetes is the executor that runs every task try as its own
// Pod, as KubernetesPodOperator does: BuildPod turns a rendered task into a
// Pod with deterministic name, labels and annotations, so a restarted
// scheduler finds (and adopts) the pods of unfinished tries and never
// creates a second pod for one try. It references Secrets, never reads them.
package kubernetes
