package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// airflowClientModule is the official client the API is held to; its
// module carries Airflow's OpenAPI document.
const airflowClientModule = "github.com/apache/airflow-client-go/airflow"

// airflowSpec loads the OpenAPI document shipped in the official client's
// module, with its servers pointed at baseURL.
func airflowSpec(t *testing.T, baseURL string) routers.Router {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", airflowClientModule).Output()
	if err != nil {
		t.Fatalf("locate %s: %v", airflowClientModule, err)
	}
	path := filepath.Join(strings.TrimSpace(string(out)), "api", "openapi.yaml")
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(path)
	if err != nil {
		t.Fatalf("load %s: %v", path, err)
	}
	// One example in Airflow's document is itself invalid.
	if err := doc.Validate(loader.Context, openapi3.DisableExamplesValidation()); err != nil {
		t.Fatalf("validate %s: %v", path, err)
	}
	doc.Servers = openapi3.Servers{{URL: baseURL + "/api/v1"}}
	router, err := legacy.NewRouter(doc, openapi3.DisableExamplesValidation())
	if err != nil {
		t.Fatal(err)
	}
	return router
}

// validatingTransport checks every response against Airflow's OpenAPI
// document: status codes, content types and bodies.
type validatingTransport struct {
	t      *testing.T
	router routers.Router
	mu     sync.Mutex
	seen   map[string]int // "METHOD /path/template status" -> responses validated
	// requests checks the requests too, except those marked onPurpose.
	requests bool
}

func (v *validatingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil {
		reqBody, _ = io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
	}
	if v.requests && req.Header.Get(onPurpose) == "" {
		if route, params, err := v.router.FindRoute(req); err == nil {
			vreq := req.Clone(context.Background())
			vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
			in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route,
				Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true}}
			if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
				v.t.Errorf("%s %s: the request does not match the document: %v", req.Method, req.URL, err)
			}
		}
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		v.t.Errorf("%s %s: not a route of Airflow's API: %v", req.Method, req.URL.Path, err)
		return resp, nil
	}
	vreq := req.Clone(context.Background())
	vreq.Body = io.NopCloser(bytes.NewReader(reqBody))
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
		Status: resp.StatusCode, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), input); err != nil {
		v.t.Errorf("%s %s -> %d does not match Airflow's OpenAPI document: %v\nbody: %s", req.Method, req.URL.Path, resp.StatusCode, err, truncate(body))
	}
	v.mu.Lock()
	v.seen[fmt.Sprintf("%s %s %d", req.Method, route.Path, resp.StatusCode)]++
	v.mu.Unlock()
	return resp, nil
}

func truncate(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "..."
	}
	return string(b)
}
