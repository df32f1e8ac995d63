package kubernetes

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	listers "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"updraft/dags"
	"updraft/executor"
	"updraft/executor/python"
)

// Options configure the executor.
type Options struct {
	Client   *Client
	Defaults Defaults
	Log      *slog.Logger
	Slots    int           // pods at once (default 256)
	Grace    *int64        // deletion grace period; nil: the pod's own
	Retry    time.Duration // first backoff after an API error (default 1 s)
	// AllNamespaces watches pods in every namespace (needs a ClusterRole).
	// By default only Defaults.Namespace is watched, which a namespaced
	// Role allows; a task naming another namespace is refused.
	AllNamespaces bool
	// ObservePodStart, when set, is told how long each pod took from its
	// creation to its container running (a metric).
	ObservePodStart func(time.Duration)
	// SweepGrace spares pods younger than this from Sweep (default 1
	// minute): another replica may have created one for a try started
	// after the sweep read the live tries.
	SweepGrace time.Duration
	// Results reads what a Python callable's pod reported (nil: nothing).
	Results func(ctx context.Context, k executor.TryKey) (*python.Result, error)
}

// Executor runs tries as pods. Call Run before Start.
type Executor struct {
	opts   Options
	log    *slog.Logger
	events chan executor.Event
	lister listers.PodLister
	synced chan struct{}

	// life ends when Run returns: the executor's timers, log streams and
	// deletions stop with it, as they would with the process.
	life context.Context
	end  context.CancelFunc

	mu    sync.Mutex
	tries map[executor.TryKey]*podTry
}

type podTry struct {
	try       executor.Try
	pod       *corev1.Pod
	startup   time.Duration
	schedule  time.Duration // schedule_timeout_seconds (0: none beyond the start-up timeout)
	logEvents bool          // log_events_on_failure
	onFinish  string
	getLogs   bool
	container string
	created   time.Time // the pod's creation (zero until it exists)
	killed    string
	finished  bool
	logging   bool
	node      string          // the node the pod was scheduled on, once known
	started   bool            // the container was seen running
	ended     context.Context // done when the try's end is known (or the executor stops)
	end       context.CancelFunc
	logDone   chan struct{}
	timers    []*time.Timer
	xcom      map[string]json.RawMessage // what the try pushed, once it succeeded
	lastLine  string                     // the last line of the pod's log (a BashOperator's XCom)
	sawLine   bool
}

// newPodTry reads every pod setting of the try from its task's spec: the
// same for a try started here and one adopted after a restart.
func (e *Executor) newPodTry(t executor.Try, pod *corev1.Pod) *podTry {
	pt := &podTry{try: t, pod: pod, startup: dags.DefaultStartupTimeout, onFinish: dags.DeletePod, getLogs: true,
		container: BaseContainer, logDone: make(chan struct{})}
	pt.ended, pt.end = context.WithCancel(e.life)
	if s, ok := t.Spec.(dags.PodSpec); ok {
		pt.startup, pt.onFinish, pt.getLogs = s.StartupTimeout, s.OnFinishAction, s.GetLogs
		pt.schedule, pt.logEvents = s.ScheduleTimeout, s.LogEventsOnFailure
		if s.BaseContainerName != "" {
			pt.container = s.BaseContainerName
		}
	}
	if pt.onFinish == "" {
		pt.onFinish = dags.DeletePod
	}
	return pt
}

// keeps says whether on_finish_action keeps the pod of a try that ended
// in state.
func (pt *podTry) keeps(state executor.State) bool {
	return pt.onFinish == dags.KeepPod || pt.onFinish == dags.DeleteSucceededPod && state != executor.Succeeded
}

// New returns a Kubernetes executor.
func New(opts Options) *Executor {
	if opts.Slots <= 0 {
		opts.Slots = 256
	}
	if opts.Retry <= 0 {
		opts.Retry = time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.SweepGrace == 0 {
		opts.SweepGrace = time.Minute
	}
	life, end := context.WithCancel(context.Background())
	return &Executor{opts: opts, log: opts.Log, events: make(chan executor.Event, 4096), synced: make(chan struct{}),
		tries: map[executor.TryKey]*podTry{}, life: life, end: end}
}

// Run watches the pods updraft manages (a label-filtered shared informer)
// until ctx ends.
func (e *Executor) Run(ctx context.Context) error {
	defer e.end()
	ns := ""
	if !e.opts.AllNamespaces {
		ns = e.namespace()
	}
	managed := func(o metav1.ListOptions) metav1.ListOptions {
		o.LabelSelector = LabelManagedBy + "=" + ManagedBy
		return o
	}
	inf := cache.NewSharedIndexInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return e.opts.Client.ListPods(ctx, ns, managed(o))
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return e.opts.Client.WatchPods(ctx, ns, managed(o))
		},
	}, &corev1.Pod{}, 10*time.Minute, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	e.lister = listers.NewPodLister(inf.GetIndexer())
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { e.observe(obj, false) },
		UpdateFunc: func(_, obj any) { e.observe(obj, false) },
		DeleteFunc: func(obj any) { e.observe(obj, true) },
	})
	if err != nil {
		return err
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		inf.Run(ctx.Done())
	}()
	defer func() { <-stopped }()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return ctx.Err()
	}
	close(e.synced)
	<-ctx.Done()
	return nil
}

func (e *Executor) namespace() string {
	if e.opts.Defaults.Namespace != "" {
		return e.opts.Defaults.Namespace
	}
	return "default"
}

// Events delivers try events.
func (e *Executor) Events() <-chan executor.Event { return e.events }

// Free returns how many more pods may be started.
func (e *Executor) Free() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.opts.Slots - len(e.tries)
}

func (e *Executor) send(ev executor.Event) {
	if ev.At.IsZero() {
		ev.At = time.Now()
	}
	e.events <- ev
}

func (e *Executor) appendLog(t executor.Try, line string) {
	executor.AppendLogLine(t.Mask, t.LogPath, time.Now(), line)
}

// Start creates the try's pod. It returns at once: the pod is created in
// the background, retrying while the API server refuses or cannot be
// reached; a Running event follows its creation.
func (e *Executor) Start(ctx context.Context, t executor.Try) error {
	if _, ok := t.Spec.(dags.EmptySpec); ok {
		e.send(executor.Event{Key: t.Key, State: executor.Running})
		e.send(executor.Event{Key: t.Key, State: executor.Succeeded, Reason: "EmptyOperator"})
		return nil
	}
	pod, err := BuildPod(t, e.opts.Defaults)
	if err != nil {
		return err
	}
	if !e.opts.AllNamespaces && pod.Namespace != e.namespace() {
		return fmt.Errorf("the task's namespace %q is not watched: the server watches %q (start it with --all-namespaces and a ClusterRole to run pods anywhere)", pod.Namespace, e.namespace())
	}
	pt := e.newPodTry(t, pod)
	pt.container = pod.Spec.Containers[0].Name
	e.mu.Lock()
	if len(e.tries) >= e.opts.Slots {
		e.mu.Unlock()
		pt.end()
		return executor.ErrFull
	}
	if _, dup := e.tries[t.Key]; dup {
		e.mu.Unlock()
		pt.end()
		return fmt.Errorf("try %s is already running", t.Key)
	}
	e.tries[t.Key] = pt
	e.mu.Unlock()
	e.appendLog(t, fmt.Sprintf("updraft: try %d of %s (run %s): creating pod %s/%s", t.Key.TryNumber, t.Key.Task(), t.Key.RunID, pod.Namespace, pod.Name))
	go e.create(ctx, pt)
	return nil
}

// create creates the pod, retrying API errors with backoff. A pod that
// already exists with this try's name is this try's pod (names are
// deterministic): it is adopted, never duplicated.
func (e *Executor) create(ctx context.Context, pt *podTry) {
	<-e.synced
	backoff := e.opts.Retry
	for {
		err := e.opts.Client.CreatePod(ctx, pt.pod)
		if err == nil || apierrors.IsAlreadyExists(err) {
			break
		}
		if ctx.Err() != nil {
			return
		}
		if !retriable(err) {
			e.fail(pt, fmt.Sprintf("pod %s could not be created: %v", pt.pod.Name, err))
			return
		}
		e.log.Warn("pod creation failed; retrying", "pod", pt.pod.Name, "err", err, "backoff", backoff)
		time.Sleep(backoff)
		backoff = min(2*backoff, 30*time.Second)
	}
	e.running(pt, time.Now())
}

// running starts a try's clocks once its pod exists and reports Running.
// The start-up timeout counts from the pod's creation, the execution
// timeout from the try's start: after an adoption, what is left of them.
func (e *Executor) running(pt *podTry, created time.Time) {
	e.mu.Lock()
	pt.created = created
	if pt.startup > 0 {
		pt.timers = append(pt.timers, e.after(pt.startup-time.Since(created), func() { e.startupTimeout(pt) }))
	}
	if pt.schedule > 0 {
		pt.timers = append(pt.timers, e.after(pt.schedule-time.Since(created), func() { e.scheduleTimeout(pt) }))
	}
	if pt.try.Timeout > 0 {
		began := pt.try.Started
		if began.IsZero() {
			began = created
		}
		pt.timers = append(pt.timers, e.after(pt.try.Timeout-time.Since(began), func() {
			_ = e.Kill(e.life, pt.try.Key, fmt.Sprintf("execution_timeout of %v exceeded", pt.try.Timeout))
		}))
	}
	e.mu.Unlock()
	e.send(executor.Event{Key: pt.try.Key, State: executor.Running, Handle: pt.pod.Namespace + "/" + pt.pod.Name})
	if pod, err := e.lister.Pods(pt.pod.Namespace).Get(pt.pod.Name); err == nil {
		e.observe(pod, false)
	}
}

// after runs f in d (at once if d is not positive), unless the executor
// has stopped by then.
func (e *Executor) after(d time.Duration, f func()) *time.Timer {
	return time.AfterFunc(max(0, d), func() {
		if e.life.Err() == nil {
			f()
		}
	})
}

func retriable(err error) bool {
	return apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err) || apierrors.IsUnexpectedServerError(err) ||
		!isStatus(err)
}

// isStatus tells API answers apart from transport errors (unreachable).
func isStatus(err error) bool {
	var s apierrors.APIStatus
	return errors.As(err, &s)
}

// startupTimeout fails a try whose pod has not started in time, with the
// reason Kubernetes gives (unschedulable, image pull).
func (e *Executor) startupTimeout(pt *podTry) {
	pod, err := e.lister.Pods(pt.pod.Namespace).Get(pt.pod.Name)
	if err != nil {
		return
	}
	st := readPod(pod, pt.container)
	if st.started || st.done {
		return
	}
	why := st.stuck
	if why == "" {
		why = string(pod.Status.Phase)
	}
	e.failStart(pt, fmt.Sprintf("Pod took longer than %d seconds to start: %s", int(pt.startup.Seconds()), why))
}

// scheduleTimeout fails a try whose pod no node took in time
// (schedule_timeout_seconds), with the scheduler's reason.
func (e *Executor) scheduleTimeout(pt *podTry) {
	pod, err := e.lister.Pods(pt.pod.Namespace).Get(pt.pod.Name)
	if err != nil || pod.Spec.NodeName != "" {
		return
	}
	why := "not scheduled"
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status != corev1.ConditionTrue && c.Message != "" {
			why = c.Reason + ": " + c.Message
		}
	}
	e.failStart(pt, fmt.Sprintf("Pod took longer than %d seconds to be scheduled: %s", int(pt.schedule.Seconds()), why))
}

// logPodEvents writes the pod's events into the try's log
// (log_events_on_failure).
func (e *Executor) logPodEvents(pt *podTry) {
	ctx, cancel := context.WithTimeout(e.life, 10*time.Second)
	defer cancel()
	list, err := e.opts.Client.ListEvents(ctx, pt.pod.Namespace, metav1.ListOptions{
		FieldSelector: "involvedObject.kind=Pod,involvedObject.name=" + pt.pod.Name})
	if err != nil {
		e.appendLog(pt.try, "updraft: the pod's events cannot be read: "+err.Error())
		return
	}
	if len(list.Items) == 0 {
		e.appendLog(pt.try, "updraft: the pod has no events")
		return
	}
	e.appendLog(pt.try, fmt.Sprintf("updraft: the pod's events (%d):", len(list.Items)))
	for _, ev := range list.Items {
		e.appendLog(pt.try, fmt.Sprintf("  %s %s %s: %s", ev.Type, ev.Reason, ev.Source.Component, strings.TrimSpace(ev.Message)))
	}
}

// failStart ends a try whose pod cannot start. Its pod is deleted, or
// kept when on_finish_action keeps failed pods (as Airflow does: that is
// when people want to describe it).
func (e *Executor) failStart(pt *podTry, reason string) {
	if pt.keeps(executor.Failed) {
		e.appendLog(pt.try, "updraft: keeping pod "+pt.pod.Namespace+"/"+pt.pod.Name+" ("+pt.onFinish+")")
		e.finish(pt, executor.Failed, nil, reason, time.Now())
		return
	}
	_ = e.Kill(e.life, pt.try.Key, reason)
}

// observe applies a pod change seen by the informer.
func (e *Executor) observe(obj any, deleted bool) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		if tomb, isTomb := obj.(cache.DeletedFinalStateUnknown); isTomb {
			pod, ok = tomb.Obj.(*corev1.Pod)
		}
		if !ok {
			return
		}
	}
	k, ok := tryKeyOf(pod)
	if !ok {
		return
	}
	e.mu.Lock()
	pt := e.tries[k]
	if pt == nil || pt.finished || pt.created.IsZero() {
		e.mu.Unlock()
		return
	}
	st := readPod(pod, pt.container)
	startLogs := st.started && pt.getLogs && !pt.logging
	if startLogs {
		pt.logging = true
	}
	killed := pt.killed
	newNode := pod.Spec.NodeName != "" && pt.node == ""
	if newNode {
		pt.node = pod.Spec.NodeName
	}
	firstStart := st.started && !pt.started
	if firstStart {
		pt.started = true
	}
	created := pt.created
	e.mu.Unlock()
	if firstStart && e.opts.ObservePodStart != nil {
		e.opts.ObservePodStart(time.Since(created))
	}
	if newNode {
		e.appendLog(pt.try, "updraft: pod "+pod.Namespace+"/"+pod.Name+" scheduled on node "+pod.Spec.NodeName)
	}
	if startLogs {
		go e.streamLogs(pt)
	}
	// The end: when the container ended (to the second, as Kubernetes
	// records it), or now if it was seen within that second.
	now := time.Now()
	at := now
	if !st.finishedAt.IsZero() && now.Sub(st.finishedAt) >= time.Second {
		at = st.finishedAt
	}
	switch {
	case deleted:
		reason := killed
		if reason == "" {
			reason = "pod " + pod.Name + " was deleted by someone else"
		}
		e.finish(pt, executor.Failed, st.exitCode, reason, now)
	case killed != "":
		// Being deleted on our request: the delete event finishes it.
	case st.done && st.ok && pt.try.XComPush && isPodTask(pt.try):
		v, why := podXCom(st)
		if why != "" {
			e.finish(pt, executor.Failed, st.exitCode, fmt.Sprintf("Pod %s: %s", pod.Name, why), at)
			return
		}
		e.mu.Lock()
		pt.xcom = executor.ReturnValue(v)
		e.mu.Unlock()
		e.finish(pt, executor.Succeeded, st.exitCode, "", at)
	case st.done && st.ok:
		e.finish(pt, executor.Succeeded, st.exitCode, "", at)
	case st.done && st.exitCode != nil && slices.Contains(pt.try.SkipOn, *st.exitCode):
		e.finish(pt, executor.Skipped, st.exitCode, fmt.Sprintf("Pod %s exited with code %d, which skip_on_exit_code makes skipped", pod.Name, *st.exitCode), at)
	case st.done:
		e.finish(pt, executor.Failed, st.exitCode, fmt.Sprintf("Pod %s returned a failure: %s", pod.Name, st.reason), at)
	case st.fatal != "":
		e.failStart(pt, fmt.Sprintf("Pod %s cannot start: %s", pod.Name, st.fatal))
	}
}

// isPodTask tells a KubernetesPodOperator try (its XCom is return.json)
// from a BashOperator one run in a pod (its XCom is its last line).
func isPodTask(t executor.Try) bool {
	_, ok := t.Spec.(dags.PodSpec)
	return ok
}

func tryKeyOf(pod *corev1.Pod) (executor.TryKey, bool) {
	a := pod.Annotations
	var try int
	if _, err := fmt.Sscanf(a[AnnotationTry], "%d", &try); err != nil || a[AnnotationDAG] == "" {
		return executor.TryKey{}, false
	}
	mapIndex := -1
	if v, ok := a[AnnotationMap]; ok {
		if _, err := fmt.Sscanf(v, "%d", &mapIndex); err != nil {
			return executor.TryKey{}, false
		}
	}
	return executor.TryKey{DagID: a[AnnotationDAG], RunID: a[AnnotationRun], TaskID: a[AnnotationTask], TryNumber: try, MapIndex: mapIndex}, true
}

// fail ends a try whose pod never existed.
func (e *Executor) fail(pt *podTry, reason string) {
	e.mu.Lock()
	pt.created = time.Now()
	e.mu.Unlock()
	e.finish(pt, executor.Failed, nil, reason, time.Now())
}

// finish takes a try's outcome, once. It never waits: the informer calls
// it for every pod, and one pod's log must not hold up another's end.
// The outcome is reported by report, in a goroutine of its own.
func (e *Executor) finish(pt *podTry, state executor.State, code *int, reason string, at time.Time) {
	e.mu.Lock()
	if pt.finished {
		e.mu.Unlock()
		return
	}
	pt.finished = true
	for _, t := range pt.timers {
		t.Stop()
	}
	pt.end()
	logging, deleted := pt.logging, pt.killed != ""
	e.mu.Unlock()
	go e.report(pt, state, code, reason, at, logging, deleted)
}

// report writes the end of a try's log (after the last lines of the pod's
// log), applies on_finish_action (unless the pod was deleted to kill the
// try), and sends the outcome.
func (e *Executor) report(pt *podTry, state executor.State, code *int, reason string, at time.Time, logging, deleted bool) {
	if logging {
		select {
		case <-pt.logDone:
		case <-time.After(logDrainTimeout):
			e.log.Warn("the pod's log did not end in time; reporting its try without the rest", "pod", pt.pod.Name)
		}
	}
	if state == executor.Failed && pt.logEvents {
		e.logPodEvents(pt)
	}
	line := "updraft: try ended: " + string(state)
	if reason != "" {
		line += ": " + reason
	}
	e.appendLog(pt.try, line)
	if !pt.keeps(state) && !deleted {
		go e.deletePod(e.life, pt)
	}
	e.mu.Lock()
	delete(e.tries, pt.try.Key)
	e.mu.Unlock()
	e.mu.Lock()
	xcom := pt.xcom
	if _, bash := pt.try.Spec.(dags.BashSpec); bash && state == executor.Succeeded && pt.try.XComPush {
		// A BashOperator pushes the last line of its output, as on
		// Airflow's workers: the last line of the pod's log.
		b, _ := json.Marshal(strings.TrimRight(pt.lastLine, " \t\r"))
		xcom = executor.ReturnValue(b)
	}
	e.mu.Unlock()
	ev := executor.Event{Key: pt.try.Key, State: state, ExitCode: code, Reason: reason, At: at, XCom: xcom}
	if s, ok := pt.try.Spec.(dags.PythonSpec); ok && pt.killed == "" { // a killed try keeps why it was killed
		e.finishPython(&ev, pt.try, s)
	}
	e.send(ev)
}

// finishPython completes a Python try's event from the result its pod
// reported through the Execution API.
func (e *Executor) finishPython(ev *executor.Event, t executor.Try, s dags.PythonSpec) {
	if e.opts.Results == nil {
		python.Finish(ev, s, nil, t.XComPush)
		return
	}
	res, err := e.opts.Results(e.life, t.Key)
	if err != nil {
		ev.State, ev.Reason = executor.Failed, "reading the try's result: "+err.Error()
		return
	}
	python.Finish(ev, s, res, t.XComPush)
}

// logDrainTimeout bounds the wait for a pod's last log lines once it
// ended (the reads are bounded too; this is the backstop).
const logDrainTimeout = 15 * time.Second

// deletePod deletes a try's pod, retrying API errors with backoff. It
// reports whether the pod was already gone.
func (e *Executor) deletePod(ctx context.Context, pt *podTry) (gone bool) {
	backoff := e.opts.Retry
	for i := 0; i < 8; i++ {
		err := e.opts.Client.DeletePod(ctx, pt.pod.Namespace, pt.pod.Name, e.opts.Grace)
		if apierrors.IsNotFound(err) {
			return true
		}
		if err == nil || !retriable(err) || ctx.Err() != nil {
			return false
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 30*time.Second)
	}
	return false
}

// Kill deletes a try's pod; its final event is Failed with reason.
func (e *Executor) Kill(ctx context.Context, k executor.TryKey, reason string) error {
	e.mu.Lock()
	pt := e.tries[k]
	if pt == nil || pt.finished || pt.killed != "" {
		e.mu.Unlock()
		return nil
	}
	pt.killed = reason
	e.mu.Unlock()
	e.appendLog(pt.try, "updraft: killing the pod: "+reason)
	err := e.opts.Client.DeletePod(ctx, pt.pod.Namespace, pt.pod.Name, e.opts.Grace)
	switch {
	case apierrors.IsNotFound(err):
		e.finish(pt, executor.Failed, nil, reason, time.Now())
		return nil
	case err != nil && retriable(err):
		// The API server is busy or away: keep trying in the background
		// (the delete event ends the try), rather than leave a killed try
		// whose pod runs on.
		e.log.Warn("deleting a pod failed; retrying", "pod", pt.pod.Name, "err", err)
		go func() {
			if gone := e.deletePod(e.life, pt); gone {
				e.finish(pt, executor.Failed, nil, reason, time.Now())
			}
		}()
		return nil
	}
	return err
}

// Adopt re-attaches to the pod of a try started by an earlier process,
// found by its identity labels. Its events then arrive as usual; a try
// whose pod is gone returns ErrGone.
func (e *Executor) Adopt(ctx context.Context, t executor.Try) error {
	select {
	case <-e.synced:
	case <-ctx.Done():
		return ctx.Err()
	}
	found, err := e.lister.List(labels.SelectorFromSet(TryLabels(t.Key)))
	if err != nil {
		return err
	}
	var pods []*corev1.Pod
	for _, p := range found { // an unmapped try's labels also match a mapped instance's
		if k, ok := tryKeyOf(p); ok && k == t.Key {
			pods = append(pods, p)
		}
	}
	if len(pods) == 0 {
		return fmt.Errorf("try %s: %w", t.Key, executor.ErrGone)
	}
	pod := pods[0]
	// Every setting comes from the task's spec as it was rendered when
	// the try started, exactly as if this process had started it.
	pt := e.newPodTry(t, pod)
	if !slices.ContainsFunc(pod.Spec.Containers, func(c corev1.Container) bool { return c.Name == pt.container }) && len(pod.Spec.Containers) > 0 {
		pt.container = pod.Spec.Containers[0].Name
	}
	e.mu.Lock()
	e.tries[t.Key] = pt
	e.mu.Unlock()
	if pt.getLogs {
		// The pod's whole log is read again from its start, so the try's
		// log starts over rather than repeating what an earlier process
		// wrote.
		if f, err := executor.OpenLog(t, true); err == nil {
			f.Close()
		}
		e.appendLog(t, "updraft: adopted pod "+pod.Namespace+"/"+pod.Name+" after a restart; its log is read again from the start")
	} else {
		e.appendLog(t, "updraft: adopted pod "+pod.Namespace+"/"+pod.Name+" after a restart")
	}
	created := pod.CreationTimestamp.Time
	if created.IsZero() {
		created = time.Now()
	}
	e.running(pt, created)
	return nil
}

// ReplaysLog says whether Adopt writes a try's log again from its start:
// when its task reads the pod's log (get_logs).
func (e *Executor) ReplaysLog(t executor.Try) bool {
	if s, ok := t.Spec.(dags.PodSpec); ok {
		return s.GetLogs
	}
	return true
}

// Sweep deletes the pods no try needs any more: pods of tries that are not
// live (not running here, and not unfinished for the scheduler) that ended
// (or were left running by a crash), unless their on_finish_action keeps
// them. It runs after a restart, once the live tries are adopted, so no
// pod is left behind by a crash between a try's end and its pod's deletion.
func (e *Executor) Sweep(ctx context.Context, live func(executor.TryKey) bool) (int, error) {
	select {
	case <-e.synced:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	pods, err := e.lister.List(labels.Everything())
	if err != nil {
		return 0, err
	}
	n := 0
	for _, pod := range pods {
		k, ok := tryKeyOf(pod)
		if !ok || pod.DeletionTimestamp != nil || live(k) || time.Since(pod.CreationTimestamp.Time) < e.opts.SweepGrace {
			continue
		}
		e.mu.Lock()
		_, mine := e.tries[k]
		e.mu.Unlock()
		if mine {
			continue
		}
		st := readPod(pod, BaseContainer)
		action := pod.Annotations[AnnotationFinish]
		if st.done && (action == dags.KeepPod || action == dags.DeleteSucceededPod && !st.ok) {
			continue
		}
		err := e.opts.Client.DeletePod(ctx, pod.Namespace, pod.Name, e.opts.Grace)
		if err != nil && !apierrors.IsNotFound(err) {
			return n, err
		}
		e.log.Info("deleted a pod no try needs", "pod", pod.Namespace+"/"+pod.Name, "phase", pod.Status.Phase)
		n++
	}
	return n, nil
}

// streamLogs copies the base container's log into the try's log while it
// runs. A broken stream is reopened (Airflow loses the logs of long pods
// here); lines already written are skipped by their timestamps. Once the
// try's end is known, one last read without follow fetches what the
// stream had not delivered, and the copy ends.
func (e *Executor) streamLogs(pt *podTry) {
	defer close(pt.logDone)
	f, err := executor.OpenLog(pt.try, false)
	if err != nil {
		return
	}
	defer f.Close()
	var last time.Time
	read := func(ctx context.Context, follow bool) {
		opts := &corev1.PodLogOptions{Container: pt.container, Follow: follow, Timestamps: true}
		if !last.IsZero() {
			since := metav1.NewTime(last.Truncate(time.Second))
			opts.SinceTime = &since
		}
		stream, err := e.opts.Client.PodLogs(ctx, pt.pod.Namespace, pt.pod.Name, opts)
		if err != nil {
			return
		}
		defer stream.Close()
		sc := bufio.NewScanner(stream)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			stamp, text, found := strings.Cut(line, " ")
			if t, perr := time.Parse(time.RFC3339Nano, stamp); found && perr == nil {
				if !t.After(last) {
					continue
				}
				last = t
				line = text
			}
			fmt.Fprintln(f, line)
			e.mu.Lock()
			pt.lastLine, pt.sawLine = line, true
			e.mu.Unlock()
		}
	}
	// The follow stream is cut once the end is known (a finished
	// container's stream may stay open); the last read gets the rest.
	for attempt := 0; attempt < 100000 && pt.ended.Err() == nil; attempt++ {
		read(pt.ended, true)
		select {
		case <-pt.ended.Done():
		case <-time.After(time.Second):
		}
	}
	if e.life.Err() != nil {
		return // the executor stopped
	}
	rctx, cancel := context.WithTimeout(e.life, 10*time.Second)
	defer cancel()
	read(rctx, false)
}
