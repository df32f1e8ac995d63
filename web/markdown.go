package web

import (
	"bytes"
	"html/template"

	"github.com/microcosm-cc/bluemonday"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
)

// A DAG's doc_md is Markdown from its file: rendered (GitHub's flavour,
// as Airflow's UI shows it), then sanitised, since whoever commits to the
// DAG repository writes it: no raw HTML, scripts or javascript: links reach
// the page.
var (
	markdown  = goldmark.New(goldmark.WithExtensions(extension.GFM))
	docPolicy = bluemonday.UGCPolicy()
)

func renderDoc(src string) template.HTML {
	if src == "" {
		return ""
	}
	var buf bytes.Buffer
	if err := markdown.Convert([]byte(src), &buf); err != nil {
		return template.HTML(template.HTMLEscapeString(src))
	}
	return template.HTML(docPolicy.SanitizeBytes(buf.Bytes()))
}
