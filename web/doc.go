// Package web serves updraft's user interface (server-rendered html/template
// pages, assets embedded in the binary), Airflow 2's REST API v1, and the
// authentication both share; Airflow 3's API v2 is package apiv2, mounted
// here. What pages and APIs do to runs, task instances and settings is in
// package ops; DAGs are read through a small interface, never written.
package web
