package stack

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// cluster is an overlay built and decoded: every object by kind and name.
type cluster struct {
	deployments  map[string]*appsv1.Deployment
	statefulSets map[string]*appsv1.StatefulSet
	daemonSets   map[string]*appsv1.DaemonSet
	services     map[string]*corev1.Service
	secrets      map[string]*corev1.Secret
	configMaps   map[string]*corev1.ConfigMap
	pdbs         map[string]*policyv1.PodDisruptionBudget
	hpas         map[string]*autoscalingv2.HorizontalPodAutoscaler
	policies     map[string]*networkingv1.NetworkPolicy
	operators    []string // operators' resources: apiVersion/kind/name
}

// operatorKinds are the resources of the operators prod relies on, which
// k8s.io/api has no types for: they are listed, not decoded.
var operatorKinds = []string{
	"postgresql.cnpg.io/v1/Cluster", "postgresql.cnpg.io/v1/Database",
	"kafka.strimzi.io/v1beta2/Kafka", "kafka.strimzi.io/v1beta2/KafkaNodePool",
}

// build builds the overlay with kustomize and decodes every object
// strictly into its k8s.io/api type: an unknown or misspelt field fails.
func build(t *testing.T, overlay string) *cluster {
	t.Helper()
	dir := filepath.Join(projectRoot(t), "deploy/k8s/overlays", overlay)
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", overlay, err)
	}
	c := &cluster{
		deployments: map[string]*appsv1.Deployment{}, statefulSets: map[string]*appsv1.StatefulSet{},
		daemonSets: map[string]*appsv1.DaemonSet{}, services: map[string]*corev1.Service{},
		secrets: map[string]*corev1.Secret{}, configMaps: map[string]*corev1.ConfigMap{},
		pdbs: map[string]*policyv1.PodDisruptionBudget{}, hpas: map[string]*autoscalingv2.HorizontalPodAutoscaler{},
		policies: map[string]*networkingv1.NetworkPolicy{},
	}
	for _, r := range resources.Resources() {
		text, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		kind := r.GetApiVersion() + "/" + r.GetKind()
		name := r.GetName()
		var obj any
		switch kind {
		case "apps/v1/Deployment":
			obj = into(c.deployments, name)
		case "apps/v1/StatefulSet":
			obj = into(c.statefulSets, name)
		case "apps/v1/DaemonSet":
			obj = into(c.daemonSets, name)
		case "v1/Service":
			obj = into(c.services, name)
		case "v1/Secret":
			obj = into(c.secrets, name)
		case "v1/ConfigMap":
			obj = into(c.configMaps, name)
		case "policy/v1/PodDisruptionBudget":
			obj = into(c.pdbs, name)
		case "autoscaling/v2/HorizontalPodAutoscaler":
			obj = into(c.hpas, name)
		case "networking.k8s.io/v1/NetworkPolicy":
			obj = into(c.policies, name)
		default:
			if !slices.Contains(operatorKinds, kind) {
				t.Errorf("%s: %s %s is of no kind the check knows", overlay, kind, name)
			}
			c.operators = append(c.operators, kind+"/"+name)
			continue
		}
		if err := yaml.UnmarshalStrict(text, obj); err != nil {
			t.Errorf("%s: %s %s: %v", overlay, kind, name, err)
		}
	}
	return c
}

// into makes a new object of m's type under name and returns it.
func into[T any](m map[string]*T, name string) *T {
	v := new(T)
	m[name] = v
	return v
}

// TestKustomizeOverlays builds the dev and prod overlays and checks the
// rules of every microshop workload: probes, resources, a locked-down
// security context, a PodDisruptionBudget each, autoscaling for the
// stateless services, network policies that let only the gateway take
// outside traffic, the environment against each README, and what each
// overlay adds.
func TestKustomizeOverlays(t *testing.T) {
	for _, overlay := range []string{"dev", "prod"} {
		t.Run(overlay, func(t *testing.T) {
			c := build(t, overlay)
			checkWorkloads(t, c)
			replicas := map[string]int32{"dev": 1, "prod": 3}[overlay]
			for _, name := range []string{"gateway", "order", "inventory", "payment"} {
				if d := c.deployments[name]; d != nil && (d.Spec.Replicas == nil || *d.Spec.Replicas != replicas) {
					t.Errorf("%s: %d replicas, want %d", name, ptrValue(d.Spec.Replicas), replicas)
				}
			}
			switch overlay {
			case "dev":
				// kustomize reads no file outside the overlay: a copy.
				root := projectRoot(t)
				if readFile(t, filepath.Join(root, "deploy/k8s/overlays/dev/postgres-init.sql")) != readFile(t, filepath.Join(root, "deploy/compose/postgres-init.sql")) {
					t.Error("dev: postgres-init.sql differs from deploy/compose's; copy it again")
				}
				for _, s := range []string{"postgres", "kafka"} {
					if c.statefulSets[s] == nil || c.services[s] == nil {
						t.Errorf("dev: no StatefulSet and Service %s", s)
					}
				}
			case "prod":
				for _, kind := range operatorKinds {
					if !slices.ContainsFunc(c.operators, func(o string) bool { return strings.HasPrefix(o, kind+"/") }) {
						t.Errorf("prod: no %s", kind)
					}
				}
				for name, d := range c.deployments {
					spec := d.Spec.Template.Spec
					if spec.Affinity == nil || spec.Affinity.PodAntiAffinity == nil || len(spec.TopologySpreadConstraints) == 0 {
						t.Errorf("prod: %s has no anti-affinity and topology spread", name)
					}
				}
				for _, name := range []string{"order", "inventory", "payment"} {
					if got := env(c.deployments[name], strings.ToUpper(name)+"_KAFKA_BROKERS"); got != "microshop-kafka-bootstrap:9092" {
						t.Errorf("prod: %s's Kafka is %q, want Strimzi's bootstrap Service", name, got)
					}
				}
			}
		})
	}
}

// checkWorkloads checks what holds in every overlay.
func checkWorkloads(t *testing.T, c *cluster) {
	t.Helper()
	for _, p := range programs {
		if p.service == "probe" {
			continue
		}
		d := c.deployments[p.service]
		if d == nil {
			t.Errorf("no Deployment %s", p.service)
			continue
		}
		spec := d.Spec.Template.Spec
		if spec.SecurityContext == nil || spec.SecurityContext.RunAsNonRoot == nil || !*spec.SecurityContext.RunAsNonRoot {
			t.Errorf("%s: not runAsNonRoot", p.service)
		}
		for _, ct := range spec.Containers {
			if ct.LivenessProbe == nil || ct.LivenessProbe.HTTPGet == nil || ct.LivenessProbe.HTTPGet.Path != "/healthz" {
				t.Errorf("%s: liveness is not /healthz", p.service)
			}
			if ct.ReadinessProbe == nil || ct.ReadinessProbe.HTTPGet == nil || ct.ReadinessProbe.HTTPGet.Path != "/readyz" {
				t.Errorf("%s: readiness is not /readyz", p.service)
			}
			if ct.Resources.Limits.Memory().IsZero() || ct.Resources.Requests.Cpu().IsZero() {
				t.Errorf("%s: no memory limit or CPU request", p.service)
			}
			sc := ct.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
				sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s: the root file system is writable or privileges can escalate", p.service)
			}
			checkKubeEnvironment(t, c, p, ct)
		}
		if c.services[p.service] == nil {
			t.Errorf("%s: no Service", p.service)
		}
		if c.pdbs[p.service] == nil {
			t.Errorf("%s: no PodDisruptionBudget", p.service)
		}
		if p.service != "psp" && c.hpas[p.service] == nil {
			t.Errorf("%s: no HorizontalPodAutoscaler", p.service)
		}
		np := c.policies[p.service]
		if np == nil || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
			t.Errorf("%s: no NetworkPolicy limiting its ingress and egress", p.service)
			continue
		}
		open := slices.ContainsFunc(np.Spec.Ingress, func(r networkingv1.NetworkPolicyIngressRule) bool { return len(r.From) == 0 })
		if open != (p.service == "gateway") {
			t.Errorf("%s: takes traffic from anywhere: %v; only the gateway may", p.service, open)
		}
	}
	if deny := c.policies["default-deny"]; deny == nil || len(deny.Spec.PodSelector.MatchLabels) != 0 || len(deny.Spec.Ingress) != 0 {
		t.Error("no default-deny NetworkPolicy for every pod")
	}
	if probe := c.daemonSets["probe"]; probe == nil || !probe.Spec.Template.Spec.HostPID {
		t.Error("no probe DaemonSet in the host's PID namespace")
	}
	if s := c.secrets["microshop-jwt"]; s == nil {
		t.Error("no Secret for the JWT key")
	}
}

// checkKubeEnvironment checks a container's environment against the
// program's README, as checkEnvironment does the compose file's; values
// from Secrets and ConfigMaps count as set.
func checkKubeEnvironment(t *testing.T, c *cluster, p program, ct corev1.Container) {
	t.Helper()
	got := map[string]string{}
	for _, e := range ct.Env {
		v := e.Value
		if e.ValueFrom != nil {
			v = fmt.Sprintf("from %v", e.ValueFrom)
		}
		got[e.Name] = v
	}
	for _, from := range ct.EnvFrom {
		if from.ConfigMapRef == nil || c.configMaps[from.ConfigMapRef.Name] == nil {
			t.Errorf("%s: envFrom %v, want an existing ConfigMap", p.service, from)
			continue
		}
		for k, v := range c.configMaps[from.ConfigMapRef.Name].Data {
			got[k] = v
		}
	}
	env := map[string]*string{}
	for k, v := range got {
		env[k] = &v
	}
	// Kubernetes finds instances by Service; Consul is compose's.
	required := slices.DeleteFunc(slices.Clone(p.required), func(k string) bool { return k == "CONSUL_HTTP_ADDR" })
	checkEnvironment(t, program{service: p.service, prefix: p.prefix, readme: p.readme, required: required}, env)
}

func env(d *appsv1.Deployment, name string) string {
	if d == nil {
		return ""
	}
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func ptrValue(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}
