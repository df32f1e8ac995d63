package kubernetes

import (
	"context"
	"io"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

// Client is the part of the Kubernetes API the executor speaks: pods,
// their logs and events, all of core/v1. It is a REST client whose scheme
// knows core/v1 alone: client-go's Clientset registers every API group of
// Kubernetes when the program starts, which every updraft command (even
// "updraft version") paid for in start-up time and memory.
type Client struct {
	rest *rest.RESTClient
}

// coreScheme is core/v1 (with the meta/v1 options it is asked with),
// built on first use: nothing is registered at package init.
var coreScheme = sync.OnceValues(func() (serializer.CodecFactory, runtime.ParameterCodec) {
	s := runtime.NewScheme()
	if err := corev1.AddToScheme(s); err != nil { // with meta/v1's options types
		panic(err) // static type registrations: cannot fail
	}
	return serializer.NewCodecFactory(s), runtime.NewParameterCodec(s)
})

// NewClient returns a client of the API server c names (its QPS and
// burst included).
func NewClient(c *rest.Config) (*Client, error) {
	codecs, _ := coreScheme()
	cfg := rest.CopyConfig(c)
	cfg.APIPath = "/api"
	cfg.GroupVersion = &corev1.SchemeGroupVersion
	cfg.NegotiatedSerializer = codecs.WithoutConversion()
	if cfg.UserAgent == "" {
		cfg.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(cfg)
	if err != nil {
		return nil, err
	}
	return &Client{rest: rc}, nil
}

func params() runtime.ParameterCodec {
	_, p := coreScheme()
	return p
}

// CreatePod creates pod.
func (c *Client) CreatePod(ctx context.Context, pod *corev1.Pod) error {
	return c.rest.Post().Namespace(pod.Namespace).Resource("pods").
		VersionedParams(&metav1.CreateOptions{}, params()).Body(pod).Do(ctx).Error()
}

// DeletePod deletes a pod, with grace seconds when set.
func (c *Client) DeletePod(ctx context.Context, namespace, name string, grace *int64) error {
	return c.rest.Delete().Namespace(namespace).Resource("pods").Name(name).
		Body(&metav1.DeleteOptions{GracePeriodSeconds: grace}).Do(ctx).Error()
}

// ListPods lists the pods of a namespace ("": every namespace).
func (c *Client) ListPods(ctx context.Context, namespace string, opts metav1.ListOptions) (*corev1.PodList, error) {
	list := &corev1.PodList{}
	err := c.rest.Get().Namespace(namespace).Resource("pods").VersionedParams(&opts, params()).
		Timeout(timeoutOf(opts)).Do(ctx).Into(list)
	return list, err
}

// WatchPods watches the pods of a namespace ("": every namespace).
func (c *Client) WatchPods(ctx context.Context, namespace string, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return c.rest.Get().Namespace(namespace).Resource("pods").VersionedParams(&opts, params()).
		Timeout(timeoutOf(opts)).Watch(ctx)
}

// PodLogs streams a pod's log.
func (c *Client) PodLogs(ctx context.Context, namespace, name string, opts *corev1.PodLogOptions) (io.ReadCloser, error) {
	return c.rest.Get().Namespace(namespace).Resource("pods").Name(name).SubResource("log").
		VersionedParams(opts, params()).Stream(ctx)
}

// ListEvents lists the events of a namespace.
func (c *Client) ListEvents(ctx context.Context, namespace string, opts metav1.ListOptions) (*corev1.EventList, error) {
	list := &corev1.EventList{}
	err := c.rest.Get().Namespace(namespace).Resource("events").VersionedParams(&opts, params()).
		Timeout(timeoutOf(opts)).Do(ctx).Into(list)
	return list, err
}

func timeoutOf(opts metav1.ListOptions) time.Duration {
	if opts.TimeoutSeconds != nil {
		return time.Duration(*opts.TimeoutSeconds) * time.Second
	}
	return 0
}
