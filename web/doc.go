// Package web serves updraft's user interface (server-rendered html/template
// pages, assets embedded in the binary) and, in later issues, the Airflow
// REST API v1. It reads DAGs through a small interface and never writes.
package web
