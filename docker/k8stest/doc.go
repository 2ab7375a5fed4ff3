// Package k8stest checks the deliverables of docker/ without a container
// engine or a cluster: the Kubernetes manifests parse strictly into the API
// types and run a valid `uringsend run` (parsed by the CLI's own flag
// parser), promtool accepts the Prometheus configuration and rules, the
// Grafana dashboard and the rules name only metrics the product exports,
// the seccomp profile is Docker's default plus exactly the three io_uring
// system calls, compose.yaml references only files that exist, and the
// Dockerfile builds a non-root FROM scratch image.
//
// It is a module of its own (k8s.io/api and the Prometheus Operator's API
// types stay out of the main module) that reaches the main module through a
// replace directive. Run it with:
//
//	cd docker/k8stest && go test ./...
//
// promtool (Debian package prometheus) is needed; without it the promtool
// checks skip, except under CI=true, where they fail.
package k8stest
