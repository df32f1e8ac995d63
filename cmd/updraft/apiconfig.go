package main

import (
	"fmt"
	"strconv"

	"updraft/store"
	"updraft/web"
	"updraft/web/apiv2"
)

// masked stands for a secret in the configuration the API shows.
const masked = "< hidden >"

// apiConfig is what GET /api/v2/config shows Admins when --api-expose-config
// is on: the server's settings by section, with every secret (the database
// password, the webhook URL, key and password files' contents) hidden; nil
// when exposing it is off.
func (c serverConfig) apiConfig() web.APIConfig {
	if !c.ExposeConfig {
		return nil
	}
	hideIf := func(v string) string {
		if v == "" {
			return ""
		}
		return masked
	}
	d := func(v fmt.Stringer) string { return v.String() }
	sections := []apiv2.ConfigSection{
		{Name: "core", Options: [][2]string{{"dags_folder", c.DAGs}, {"executor", c.Executor}, {"parallelism", strconv.Itoa(c.Parallelism)},
			{"local_slots", strconv.Itoa(c.Slots)}, {"inprocess_slots", strconv.Itoa(c.InProcessSlots)}, {"python", c.Python},
			{"xcom_max_bytes", strconv.Itoa(c.XComMaxBytes)}, {"dags_interval", d(c.Interval)}}},
		{Name: "database", Options: [][2]string{{"sql_alchemy_conn", store.RedactDSN(c.DB)}, {"replica_timeout", d(c.ReplicaTimeout)}}},
		{Name: "logging", Options: [][2]string{{"base_log_folder", c.Logs}, {"log_copies", c.LogCopies}}},
		{Name: "api", Options: [][2]string{{"base_url", c.Addr}, {"expose_config", "True"}}},
		{Name: "api_auth", Options: [][2]string{{"jwt_expiration_time", strconv.Itoa(int(c.Auth.TokenTTL.Seconds()))},
			{"jwt_secret", masked}, {"jwt_key_file", c.Auth.TokenKeyFile}, {"session_ttl", d(c.Auth.SessionTTL)},
			{"proxy_header", c.Auth.ProxyHeader}, {"proxy_from", c.Auth.ProxyFrom}, {"proxy_role", c.Auth.ProxyRole}}},
		{Name: "git", Options: [][2]string{{"url", hideIf(c.Git.URL)}, {"branch", c.Git.Branch}, {"path", c.Git.Path},
			{"interval", d(c.Git.Interval)}, {"keep", strconv.Itoa(c.Git.Keep)}, {"username", c.Git.Auth.Username},
			{"password_file", hideIf(c.Git.Auth.PasswordFile)}, {"ssh_key_file", hideIf(c.Git.Auth.SSHKeyFile)}}},
		{Name: "kubernetes_executor", Options: [][2]string{{"namespace", c.Kube.Namespace}, {"pod_image", c.Kube.Image},
			{"python_image", c.Kube.PythonImage}, {"max_pods", strconv.Itoa(c.Kube.Pods)}, {"all_namespaces", strconv.FormatBool(c.Kube.AllNamespaces)}}},
		{Name: "mattermost", Options: [][2]string{{"webhook_url", hideIf(c.Alerts.WebhookURL + c.Alerts.WebhookURLFile)},
			{"channel", c.Alerts.Channel}, {"username", c.Alerts.Username}, {"public_url", c.Alerts.PublicURL}, {"alert_on", c.Alerts.On}}},
	}
	return func() []apiv2.ConfigSection { return sections }
}
