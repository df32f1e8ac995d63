package dags

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"unicode"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var (
	quantityType = reflect.TypeFor[resource.Quantity]()
	intOrStrType = reflect.TypeFor[intstr.IntOrString]()
	metaTimeType = reflect.TypeFor[metav1.Time]()
)

// kube decodes a Kubernetes object written either as the Python client's
// snake_case model (optionally with __type__: kubernetes.client.models.V1X)
// or as the Kubernetes camelCase JSON form into out, a pointer to a k8s.io/api
// type. Every problem points at the YAML node it comes from; quantities are
// parsed with apimachinery.
func (r report) kube(key string, v *val, out any) bool {
	w := kubeWalker{r: r}
	j := w.walk(key, v, reflect.TypeOf(out).Elem())
	if w.failed {
		return false
	}
	data, err := json.Marshal(j)
	if err == nil {
		err = json.Unmarshal(data, out)
	}
	if err != nil {
		r.errf(v, "%s: %v", key, err)
		return false
	}
	return true
}

type kubeWalker struct {
	r      report
	failed bool
}

func (w *kubeWalker) errf(v *val, format string, args ...any) {
	w.failed = true
	w.r.errf(v, format, args...)
}

func (w *kubeWalker) walk(path string, v *val, t reflect.Type) any {
	if v.isNull() {
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case quantityType:
		if v.kind != kindScalar {
			w.errf(v, "%s: expected a resource quantity such as 500m or 1Gi, got %s", path, v.describe())
			return nil
		}
		q, err := resource.ParseQuantity(v.str)
		if err != nil {
			w.errf(v, "%s: invalid resource quantity %q (use forms such as 500m, 0.5, 128Mi, 1Gi)", path, v.str)
			return nil
		}
		return q.String()
	case intOrStrType:
		if v.kind != kindScalar {
			w.errf(v, "%s: expected a number or a name, got %s", path, v.describe())
			return nil
		}
		if n, err := strconv.Atoi(v.str); err == nil {
			return n
		}
		return v.str
	case metaTimeType:
		return v.str
	}
	// __type__: builtins.list holds its elements in items.
	if v.kind == kindMap && t.Kind() == reflect.Slice {
		if typ := v.get("__type__"); typ != nil && typ.str == "builtins.list" {
			if items := v.get("items"); items != nil {
				v = items
			}
		}
	}
	switch t.Kind() {
	case reflect.Struct:
		return w.walkStruct(path, v, t)
	case reflect.Slice:
		if v.kind != kindSeq {
			w.errf(v, "%s: expected a list, got %s", path, v.describe())
			return nil
		}
		out := make([]any, 0, len(v.items))
		for i, item := range v.items {
			out = append(out, w.walk(path+"["+strconv.Itoa(i)+"]", item, t.Elem()))
		}
		return out
	case reflect.Map:
		if v.kind != kindMap {
			w.errf(v, "%s: expected a mapping, got %s", path, v.describe())
			return nil
		}
		out := map[string]any{}
		for i, k := range v.keys {
			if k.str == "__type__" {
				continue
			}
			out[k.str] = w.walk(path+"."+k.str, v.vals[i], t.Elem())
		}
		return out
	case reflect.String:
		if v.kind != kindScalar {
			w.errf(v, "%s: expected a string, got %s", path, v.describe())
			return nil
		}
		return v.str
	case reflect.Bool:
		b, ok := w.r.boolean(path, v)
		if !ok {
			w.failed = true
		}
		return b
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if v.kind == kindScalar {
			if n, err := strconv.ParseInt(v.str, 10, 64); err == nil {
				return n
			}
		}
		w.errf(v, "%s: expected a whole number, got %s", path, v.describe())
		return nil
	case reflect.Float32, reflect.Float64:
		if v.kind == kindScalar {
			if f, err := strconv.ParseFloat(v.str, 64); err == nil {
				return f
			}
		}
		w.errf(v, "%s: expected a number, got %s", path, v.describe())
		return nil
	}
	w.errf(v, "%s: unsupported field type %s", path, t)
	return nil
}

func (w *kubeWalker) walkStruct(path string, v *val, t reflect.Type) any {
	if v.kind != kindMap {
		w.errf(v, "%s: expected a mapping (%s), got %s", path, pythonModel(t), v.describe())
		return nil
	}
	fields := kubeFields(t)
	out := map[string]any{}
	for i, k := range v.keys {
		value := v.vals[i]
		if k.str == "__type__" {
			if want := "kubernetes.client.models." + pythonModel(t); value.str != want && !strings.HasSuffix(value.str, "."+pythonModel(t)) {
				w.errf(value, "%s: __type__ %s where a %s is expected", path, value.str, want)
			}
			continue
		}
		f, ok := fields[k.str]
		if !ok {
			f, ok = fields[snakeToCamel(k.str)]
		}
		if !ok {
			var names []string
			for name := range fields {
				names = append(names, camelToSnake(name))
			}
			w.errf(k, "%s: unknown field %q of %s%s", path, k.str, pythonModel(t), suggest(camelToSnake(k.str), names))
			continue
		}
		out[f.json] = w.walk(path+"."+k.str, value, f.typ)
	}
	return out
}

type kubeField struct {
	json string
	typ  reflect.Type
}

// kubeFields maps the JSON names of a k8s.io/api struct (inline embedded
// structs flattened) to their types.
func kubeFields(t reflect.Type) map[string]kubeField {
	out := map[string]kubeField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(opts, "inline") || (f.Anonymous && name == "") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			for k, v := range kubeFields(ft) {
				out[k] = v
			}
			continue
		}
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		out[name] = kubeField{json: name, typ: f.Type}
	}
	return out
}

// pythonModel names the Python client model of a k8s.io/api type.
func pythonModel(t reflect.Type) string {
	switch t.Name() {
	case "ObjectMeta":
		return "V1ObjectMeta"
	}
	return "V1" + t.Name()
}

func camelToSnake(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		if unicode.IsUpper(r) {
			if i > 0 && (unicode.IsLower(rs[i-1]) || i+1 < len(rs) && unicode.IsLower(rs[i+1])) {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func snakeToCamel(s string) string {
	parts := strings.Split(s, "_")
	for i := 1; i < len(parts); i++ {
		p := parts[i]
		switch p {
		case "ip", "id", "uid", "tls", "url", "dns", "ips":
			parts[i] = strings.ToUpper(p)
			if p == "ips" {
				parts[i] = "IPs"
			}
		default:
			if p != "" {
				parts[i] = strings.ToUpper(p[:1]) + p[1:]
			}
		}
	}
	return strings.Join(parts, "")
}

// Secret is a KubernetesPodOperator Secret: a reference to a Kubernetes
// Secret, never its value. DeployType "env" with Key sets one env var
// DeployTarget from secretKeyRef; "env" without Key imports every key with
// envFrom; "volume" mounts the secret read-only at DeployTarget.
type Secret struct {
	DeployType   string             `json:"deploy_type"`
	DeployTarget string             `json:"deploy_target,omitempty"`
	Secret       string             `json:"secret"`
	Key          string             `json:"key,omitempty"`
	Items        []corev1.KeyToPath `json:"items,omitempty"`
}

var secretArgs = []string{"deploy_type", "deploy_target", "secret", "key", "items"}

func (r report) secret(key string, v *val) (Secret, bool) {
	var s Secret
	if v.kind != kindMap {
		r.errf(v, "%s: expected a Secret mapping (deploy_type, deploy_target, secret, key), got %s", key, v.describe())
		return s, false
	}
	ok := true
	args := map[string]*val{}
	if a := v.get("__args__"); a != nil {
		if a.kind != kindSeq || len(a.items) > len(secretArgs) {
			r.errf(a, "%s: __args__ of Secret must be a list of at most 5 values", key)
			return s, false
		}
		for i, item := range a.items {
			args[secretArgs[i]] = item
		}
	}
	for i, k := range v.keys {
		switch {
		case k.str == "__type__":
			if !strings.HasSuffix(v.vals[i].str, ".Secret") {
				r.errf(v.vals[i], "%s: __type__ %s where an airflow.providers.cncf.kubernetes.secret.Secret is expected", key, v.vals[i].str)
				ok = false
			}
		case k.str == "__args__":
		case contains(secretArgs, k.str):
			args[k.str] = v.vals[i]
		default:
			r.errf(k, "%s: unknown Secret argument %q%s", key, k.str, suggest(k.str, secretArgs))
			ok = false
		}
	}
	get := func(name string) string {
		if a := args[name]; a != nil {
			str, sok := r.str(key+"."+name, a)
			ok = ok && sok
			return str
		}
		return ""
	}
	s.DeployType, s.DeployTarget, s.Secret, s.Key = get("deploy_type"), get("deploy_target"), get("secret"), get("key")
	if it := args["items"]; it != nil {
		ok = r.kube(key+".items", it, &s.Items) && ok
	}
	switch {
	case s.DeployType != "env" && s.DeployType != "volume":
		r.errf(nodeOr(args["deploy_type"], v), "%s: deploy_type must be env or volume, got %q", key, s.DeployType)
		ok = false
	case s.Secret == "":
		r.errf(v, "%s: secret (the Kubernetes Secret's name) is required", key)
		ok = false
	case s.Key != "" && s.DeployTarget == "":
		r.errf(v, "%s: if key is set, deploy_target should not be None", key)
		ok = false
	case s.DeployType == "volume" && s.DeployTarget == "":
		r.errf(v, "%s: a volume secret needs deploy_target, the mount path", key)
		ok = false
	}
	if s.Secret != "" {
		ok = r.dnsSubdomain(key+".secret", nodeOr(args["secret"], v), s.Secret) && ok
	}
	if s.DeployType == "env" && s.Key != "" && s.DeployTarget != "" {
		ok = r.envName(key+".deploy_target", nodeOr(args["deploy_target"], v), strings.ToUpper(s.DeployTarget)) && ok
	}
	return s, ok
}

func nodeOr(v, fallback *val) *val {
	if v != nil {
		return v
	}
	return fallback
}
