//go:build cgo

package verify_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mlenv/mlenv/internal/testutil"
	"github.com/mlenv/mlenv/verify"
	"github.com/mlenv/mlenv/verify/admission"
)

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t testing.TB) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mlenv-verify.mlenv-system.svc"},
		DNSNames: []string{"mlenv-verify.mlenv-system.svc"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	kb, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

type webhook struct {
	url    string
	client *http.Client
	srv    *admission.Server
	stop   func() error
}

// startWebhook serves over real HTTPS on 127.0.0.1.
func startWebhook(t testing.TB, o admission.Options) *webhook {
	t.Helper()
	certFile, keyFile, pool := selfSigned(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := admission.New(o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l, certFile, keyFile) }()
	w := &webhook{url: "https://" + l.Addr().String(), srv: srv,
		client: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
			// Like the API server: keep-alive connections, and TLS session
			// resumption when one has to be opened again.
			TLSClientConfig: &tls.Config{RootCAs: pool, ClientSessionCache: tls.NewLRUClientSessionCache(64)}, MaxIdleConnsPerHost: 64}}}
	stopped := false
	w.stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { w.stop() })
	return w
}

// review is an AdmissionReview as the API server sends it.
func review(uid, kind, group, ns string, object string) []byte {
	resource := strings.ToLower(kind) + "s"
	return []byte(fmt.Sprintf(`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":%q,
"kind":{"group":%q,"version":"v1","kind":%q},"resource":{"group":%q,"version":"v1","resource":%q},
"requestKind":{"group":%q,"version":"v1","kind":%q},"requestResource":{"group":%q,"version":"v1","resource":%q},
"name":"trainer","namespace":%q,"operation":"CREATE",
"userInfo":{"username":"system:serviceaccount:kube-system:replicaset-controller","uid":"5b0a1c5e","groups":["system:serviceaccounts","system:authenticated"]},
"object":%s,"oldObject":null,"dryRun":false,"options":{"kind":"CreateOptions","apiVersion":"meta.k8s.io/v1"}}}`,
		uid, group, kind, group, resource, group, kind, group, resource, ns, object))
}

func podObject(images ...string) string {
	var cs []string
	for i, img := range images {
		cs = append(cs, fmt.Sprintf(`{"name":"c%d","image":%q,"resources":{},"terminationMessagePath":"/dev/termination-log","imagePullPolicy":"IfNotPresent"}`, i, img))
	}
	return `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"trainer","namespace":"ml","creationTimestamp":null,"labels":{"app":"trainer"}},
"spec":{"containers":[` + strings.Join(cs, ",") + `],"restartPolicy":"Always","dnsPolicy":"ClusterFirst","serviceAccountName":"default"},"status":{}}`
}

func deploymentObject(initImage, image string) string {
	return fmt.Sprintf(`{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"trainer","namespace":"ml","creationTimestamp":null},
"spec":{"replicas":2,"selector":{"matchLabels":{"app":"trainer"}},"template":{"metadata":{"creationTimestamp":null,"labels":{"app":"trainer"}},
"spec":{"initContainers":[{"name":"setup","image":%q,"resources":{}}],"containers":[{"name":"train","image":%q,"resources":{}}],"restartPolicy":"Always"}},
"strategy":{"type":"RollingUpdate"}},"status":{}}`, initImage, image)
}

func (w *webhook) post(t testing.TB, body []byte) (*http.Response, *admission.Review) {
	t.Helper()
	resp, err := w.client.Post(w.url+"/validate", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp, nil
	}
	var rev admission.Review
	if err := json.Unmarshal(b, &rev); err != nil {
		t.Fatalf("answer is not an AdmissionReview: %v\n%s", err, b)
	}
	return resp, &rev
}

func TestWebhookOverHTTPS(t *testing.T) {
	f := setup(t)
	f.attest(t, "")
	v := f.verifier(t, nil)
	w := startWebhook(t, admission.Options{Verifier: v, Deadline: 2 * time.Second, MaxBodyBytes: 64 << 10})
	unattested := testutil.Push(t, testutil.RandomImage(t, "linux", "amd64"), f.repo+":unattested")
	unattestedDigest, err := verify.ResolveDigestRef(unattested, verify.RemoteOptions(context.Background()))
	if err != nil {
		t.Fatal(err)
	}

	// Allowed: a Pod whose image is by digest, signed and attested.
	_, rev := w.post(t, review("uid-1", "Pod", "", "ml", podObject(f.digest.String())))
	if rev == nil || rev.Response == nil || !rev.Response.Allowed || rev.Response.UID != "uid-1" || rev.APIVersion != "admission.k8s.io/v1" {
		t.Fatalf("pod: %+v", rev)
	}

	// Denied: a Deployment with an unattested init container and a tag.
	_, rev = w.post(t, review("uid-2", "Deployment", "apps", "ml", deploymentObject(unattestedDigest, f.ref)))
	if rev == nil || rev.Response.Allowed || rev.Response.Result == nil || rev.Response.Result.Code != 403 {
		t.Fatalf("deployment: %+v", rev)
	}
	msg := rev.Response.Result.Message
	for _, want := range []string{"initContainers[setup] " + unattestedDigest, "not attested", "containers[train] " + f.ref, "not by digest"} {
		if !strings.Contains(msg, want) {
			t.Errorf("denial message lacks %q:\n%s", want, msg)
		}
	}

	// Malformed and oversized bodies: 400 and 413, no panic, server alive.
	for _, c := range []struct {
		body []byte
		code int
	}{
		{[]byte(`{"kind":"AdmissionReview",`), 400},
		{[]byte(`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}`), 400},
		{review("uid-3", "Pod", "", "ml", `{"spec":{"containers":"nope"}}`), 200},
		{append([]byte(`{"kind":"AdmissionReview","x":"`), bytes.Repeat([]byte("a"), 100<<10)...), 413},
	} {
		resp, rev := w.post(t, c.body)
		if resp.StatusCode != c.code {
			t.Errorf("body %.40q: status %d, want %d", c.body, resp.StatusCode, c.code)
		}
		if c.code == 200 && (rev == nil || rev.Response.Allowed) {
			t.Errorf("a pod spec that does not parse was allowed: %+v", rev)
		}
	}
	if resp, err := w.client.Get(w.url + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz after bad bodies: %v", err)
	}

	// Registry down: denied (fail closed), as a could-not-check.
	fresh := f.repo + "@" + mustDigest(t, testutil.Push(t, testutil.RandomImage(t, "linux", "amd64"), f.repo+":fresh"))
	f.down.Store(true)
	start := time.Now()
	_, rev = w.post(t, review("uid-4", "Pod", "", "ml", podObject(fresh)))
	if rev == nil || rev.Response.Allowed || !strings.Contains(rev.Response.Result.Message, "could not be checked") {
		t.Fatalf("registry down: %+v", rev)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("registry down took %s, over the 2 s deadline", d)
	}
	// The cached verdict for the attested image still answers.
	_, rev = w.post(t, review("uid-5", "Pod", "", "ml", podObject(f.digest.String())))
	if !rev.Response.Allowed {
		t.Errorf("cached allow lost while the registry is down: %+v", rev.Response)
	}
	f.down.Store(false)

	// Slow registry: answered before the deadline, denied.
	f.delay.Store(int64(5 * time.Second))
	start = time.Now()
	_, rev = w.post(t, review("uid-6", "Pod", "", "ml", podObject(fresh)))
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("slow registry: answered after %s, the deadline is 2 s", d)
	}
	if rev == nil || rev.Response.Allowed || !strings.Contains(rev.Response.Result.Message, "deadline") {
		t.Errorf("slow registry: %+v", rev.Response)
	}
	f.delay.Store(0)

	// Metrics: decisions, latency, cache hits, registry errors.
	resp, err := w.client.Get(w.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`mlenv_admission_decisions_total{decision="allow"} 2`, `mlenv_admission_cache_lookups_total{result="hit"} 1`,
		"mlenv_admission_registry_errors_total 2", "mlenv_admission_review_seconds_count"} {
		if !strings.Contains(string(mb), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// Graceful shutdown: readyz goes away, Serve returns cleanly.
	if err := w.stop(); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

func mustDigest(t testing.TB, ref string) string {
	t.Helper()
	d, err := verify.ResolveDigestRef(ref, verify.RemoteOptions(context.Background()))
	if err != nil {
		t.Fatal(err)
	}
	return d[strings.Index(d, "@")+1:]
}

// BenchmarkWebhook: the warm path (cache hit) at concurrency 32 over
// HTTPS on loopback, with p50/p99; the cold path (first request for a
// digest, registry on loopback) as its own case.
func BenchmarkWebhook(b *testing.B) {
	f := setup(b)
	f.attest(b, "")
	v := f.verifier(b, nil)
	body := review("uid", "Pod", "", "ml", podObject(f.digest.String()))
	b.Run("warm-c32", func(b *testing.B) {
		w := startWebhook(b, admission.Options{Verifier: v})
		// Fill the cache and open the 32 keep-alive connections first:
		// the warm path is a cache hit on an established connection.
		var wg sync.WaitGroup
		for range 32 {
			wg.Add(1)
			go func() { defer wg.Done(); w.post(b, body) }()
		}
		wg.Wait()
		lat := make(chan time.Duration, b.N)
		// RunParallel starts parallelism x GOMAXPROCS goroutines: 32 in all.
		b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
		b.ResetTimer()
		cpu0 := testutil.CPUTime()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				s := time.Now()
				_, rev := w.post(b, body)
				if rev == nil || !rev.Response.Allowed {
					b.Error("denied")
				}
				lat <- time.Since(s)
			}
		})
		b.StopTimer()
		// Client and server together: the whole process's CPU per review.
		b.ReportMetric(float64((testutil.CPUTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		close(lat)
		reportLatency(b, lat)
	})
	b.Run("cold", func(b *testing.B) {
		lat := make(chan time.Duration, b.N)
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			w := startWebhook(b, admission.Options{Verifier: v})
			b.StartTimer()
			s := time.Now()
			_, rev := w.post(b, body)
			lat <- time.Since(s)
			if rev == nil || !rev.Response.Allowed {
				b.Error("denied")
			}
			b.StopTimer()
			w.stop()
		}
		close(lat)
		reportLatency(b, lat)
	})
}

func reportLatency(b *testing.B, lat chan time.Duration) {
	var ds []time.Duration
	for d := range lat {
		ds = append(ds, d)
	}
	if len(ds) == 0 {
		return
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds())/1000, "p99-ms")
}

// A review naming many distinct images must not fan out to the registry
// without bound: before, every image left once the review's deadline had
// passed still started a detached verification (each with a fresh
// deadline), so one Pod of 500 images opened about 500 registry requests
// at once, after its answer had been sent. Now a review names at most
// admission.MaxImagesPerReview distinct images (more is denied without a
// registry call) and verifications across all reviews share one bound.
func TestWebhookBoundsRegistryFanOut(t *testing.T) {
	f := setup(t)
	v := f.verifier(t, nil)
	w := startWebhook(t, admission.Options{Verifier: v, Deadline: time.Second, MaxBodyBytes: 3 << 20})
	f.delay.Store(int64(500 * time.Millisecond))

	many := func(n, from int) []string {
		var imgs []string
		for i := range n {
			imgs = append(imgs, fmt.Sprintf("%s@sha256:%064x", f.repo, from+i))
		}
		return imgs
	}
	// Over the per-review limit: denied, saying why, no registry call.
	before := f.registryRequests.Load()
	_, rev := w.post(t, review("uid-many", "Pod", "", "ml", podObject(many(500, 0)...)))
	if rev == nil || rev.Response.Allowed || !strings.Contains(rev.Response.Result.Message, "500 distinct images") {
		t.Fatalf("500 distinct images: %+v", rev)
	}
	if n := f.registryRequests.Load() - before; n != 0 {
		t.Errorf("a review refused for its size made %d registry requests", n)
	}

	// Ten concurrent reviews at the limit, against a slow registry: the
	// registry never sees more than the global bound at once, also after
	// the answers (denied: the deadline passes) were sent.
	var wg sync.WaitGroup
	for r := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, rev := w.post(t, review(fmt.Sprintf("uid-%d", r), "Pod", "", "ml", podObject(many(admission.MaxImagesPerReview, 1000*(r+1))...)))
			if rev == nil || rev.Response.Allowed {
				t.Errorf("review %d: %+v", r, rev)
			}
		}()
	}
	wg.Wait()
	time.Sleep(2 * time.Second) // detached verifications end within a deadline
	t.Logf("peak registry requests at once: %d", f.maxInFlight.Load())
	if m := f.maxInFlight.Load(); m > admission.MaxConcurrentVerifications+8 {
		t.Errorf("%d registry requests at once, want at most about %d", m, admission.MaxConcurrentVerifications)
	}

	// 10,000 containers of one image: one image to check.
	f.delay.Store(0)
	same := make([]string, 10000)
	for i := range same {
		same[i] = f.digest.String()
	}
	f.attest(t, "")
	_, rev = w.post(t, review("uid-same", "Pod", "", "ml", podObject(same...)))
	if rev == nil || !rev.Response.Allowed {
		t.Fatalf("10,000 containers of one attested image: %+v", rev)
	}
}
