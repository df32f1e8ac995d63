// Package v2client is a client of Airflow 3's REST API generated from its
// OpenAPI document (../shared/reference/airflow-api/v2.yaml beside the
// repository) by oapi-codegen. Only the tests use it: they drive a real
// server with it as an Airflow 3 tool would. `make generate` refreshes it.
package v2client

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2 -config config.yaml ../../../../shared/reference/airflow-api/v2.yaml
