package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"

	"github.com/mlenv/mlenv/verify"
)

// Defaults that keep every answer inside the API server's 10 s webhook
// timeout, with room for the network.
const (
	DefaultDeadline     = 8 * time.Second
	DefaultMaxBodyBytes = 3 << 20 // the API server's own request limit
	DefaultCacheTTL     = 5 * time.Minute
	maxParallelImages   = 8
)

// Bounds on what one review, and all of them together, may ask of the
// registries.
const (
	// MaxImagesPerReview: a review naming more distinct images is denied
	// without checking any (real pods name a few).
	MaxImagesPerReview = 64
	// MaxConcurrentVerifications bounds image verifications in flight
	// across all reviews, each a handful of registry requests.
	MaxConcurrentVerifications = 32
)

// Options configure a Server.
type Options struct {
	Verifier *verify.Verifier
	// Deadline bounds one review (default 8 s).
	Deadline time.Duration
	// MaxBodyBytes bounds a request body (default 3 MiB).
	MaxBodyBytes int64
	// CacheTTL: how long a verdict per image digest is reused (default
	// the policy's admission.cacheTTL, else 5 m). Errors are never cached.
	CacheTTL time.Duration
	// Now is the cache clock (default time.Now).
	Now func() time.Time
	// Log receives one line per decision; nil discards.
	Log func(format string, args ...any)
}

// Server is the webhook. It keeps no state beyond a per-replica cache of
// verdicts keyed by image digest.
type Server struct {
	o      Options
	policy *verify.Policy
	ready  atomic.Bool

	mu    sync.Mutex
	cache map[string]cached
	group singleflight.Group
	// verifying holds one token per verification in flight, across all
	// reviews (MaxConcurrentVerifications).
	verifying chan struct{}

	reg            *prometheus.Registry
	decisions      map[string]prometheus.Counter // by decision, bound once
	latency        prometheus.Histogram
	cacheHits      prometheus.Counter
	cacheMisses    prometheus.Counter
	registryErrors prometheus.Counter
}

// bodyPool holds request body buffers: a warm review allocates little
// (each allocation is garbage-collector work that shows in the p99).
var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

type cached struct {
	res     *verify.Result
	expires time.Time
}

// New makes a server; it is ready at once (SetReady(false) while draining).
func New(o Options) *Server {
	p := o.Verifier.Policy()
	if o.Deadline <= 0 {
		o.Deadline = DefaultDeadline
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.CacheTTL <= 0 {
		o.CacheTTL = time.Duration(p.Admission.CacheTTL)
		if o.CacheTTL <= 0 {
			o.CacheTTL = DefaultCacheTTL
		}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	s := &Server{o: o, policy: p, cache: map[string]cached{}, reg: prometheus.NewRegistry(),
		verifying: make(chan struct{}, MaxConcurrentVerifications)}
	decisions := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mlenv_admission_decisions_total",
		Help: "Admission reviews answered, by decision (allow, deny, error)."}, []string{"decision"})
	s.decisions = map[string]prometheus.Counter{}
	for _, d := range []string{"allow", "deny", "error"} {
		s.decisions[d] = decisions.WithLabelValues(d)
	}
	s.latency = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mlenv_admission_review_seconds",
		Help: "Time to answer one admission review.", Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}})
	cacheLookups := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mlenv_admission_cache_lookups_total",
		Help: "Verdict cache lookups per image, by result (hit, miss)."}, []string{"result"})
	s.cacheHits, s.cacheMisses = cacheLookups.WithLabelValues("hit"), cacheLookups.WithLabelValues("miss")
	s.registryErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "mlenv_admission_registry_errors_total",
		Help: "Images that could not be checked (registry or statement read errors): each denied."})
	s.reg.MustRegister(decisions, s.latency, cacheLookups, s.registryErrors)
	s.ready.Store(true)
	return s
}

// SetReady flips /readyz (false while shutting down).
func (s *Server) SetReady(ok bool) { s.ready.Store(ok) }

// Handler serves POST /validate, /healthz, /readyz and /metrics.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/validate", s.validate)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	return mux
}

// Serve answers on l with TLS (cert and key files) until ctx ends, then
// stops taking requests, lets those in flight finish (up to the review
// deadline) and returns.
func (s *Server) Serve(ctx context.Context, l net.Listener, certFile, keyFile string) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: s.o.Deadline + 2*time.Second, IdleTimeout: 90 * time.Second, MaxHeaderBytes: 64 << 10}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(l, certFile, keyFile) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.SetReady(false)
	sctx, cancel := context.WithTimeout(context.Background(), s.o.Deadline+2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (s *Server) validate(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.Method != http.MethodPost {
		http.Error(w, "POST an AdmissionReview", http.StatusMethodNotAllowed)
		return
	}
	buf := bodyPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 1<<20 { // keep the pool from pinning huge buffers
			bodyPool.Put(buf)
		}
	}()
	if r.ContentLength > 0 && r.ContentLength <= s.o.MaxBodyBytes {
		buf.Grow(int(r.ContentLength) + 1)
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, s.o.MaxBodyBytes))
	body := buf.Bytes()
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, fmt.Sprintf("request body over %d bytes", s.o.MaxBodyBytes), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading the request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	var rev Review
	if err := json.Unmarshal(body, &rev); err != nil {
		http.Error(w, "not an AdmissionReview: "+err.Error(), http.StatusBadRequest)
		return
	}
	if rev.APIVersion != "admission.k8s.io/v1" || rev.Kind != "AdmissionReview" || rev.Request == nil || rev.Request.UID == "" {
		http.Error(w, "not an admission.k8s.io/v1 AdmissionReview with a request and a uid", http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.o.Deadline)
	defer cancel()
	resp := s.review(ctx, rev.Request)
	decision := "allow"
	if !resp.Allowed {
		decision = "deny"
		if resp.Result != nil && resp.Result.Reason == "InternalError" {
			decision = "error"
		}
	}
	s.decisions[decision].Inc()
	s.latency.Observe(time.Since(start).Seconds())
	s.o.Log("%s %s/%s %s: %s", rev.Request.Kind.Kind, rev.Request.Namespace, rev.Request.Name, rev.Request.UID, decision)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(Review{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview", Response: resp})
}

// review decides one request. Every image is checked (in parallel, up to
// the deadline); the message names each failing image and why.
func (s *Server) review(ctx context.Context, req *Request) *Response {
	resp := &Response{UID: req.UID, Allowed: true}
	if slices.Contains(s.policy.Admission.ExcludeNamespaces, req.Namespace) || req.Operation == "DELETE" || len(req.Object) == 0 {
		return resp
	}
	images, ok, err := Images(req.Kind.Kind, req.Object)
	if !ok {
		return resp
	}
	if err != nil {
		return deny(resp, http.StatusBadRequest, "BadRequest", err.Error())
	}
	distinct := map[string]bool{}
	for _, ci := range images {
		distinct[ci.Image] = true
	}
	if len(distinct) > MaxImagesPerReview {
		return deny(resp, http.StatusForbidden, "Forbidden", fmt.Sprintf("mlenv verify denied the %s: it names %d distinct images, more than the %d one review may check", req.Kind.Kind, len(distinct), MaxImagesPerReview))
	}
	results := make([]string, len(images))
	warnings := make([][]string, len(images))
	errored := make([]bool, len(images))
	if len(images) == 1 {
		// The common Pod: no goroutine to start and wait for.
		results[0], warnings[0], errored[0] = s.checkImage(ctx, images[0])
	} else {
		g := errgroup.Group{}
		g.SetLimit(maxParallelImages)
		for i, ci := range images {
			g.Go(func() error {
				results[i], warnings[i], errored[i] = s.checkImage(ctx, ci)
				return nil
			})
		}
		g.Wait()
	}
	var denials []string
	anyError := false
	for i := range images {
		if results[i] != "" {
			denials = append(denials, results[i])
		}
		resp.Warnings = append(resp.Warnings, warnings[i]...)
		anyError = anyError || errored[i]
	}
	if len(denials) > 0 {
		reason := "Forbidden"
		if anyError {
			reason = "InternalError"
		}
		return deny(resp, http.StatusForbidden, reason, "mlenv verify denied "+strings.Join(denials, "; "))
	}
	return resp
}

func deny(resp *Response, code int32, reason, msg string) *Response {
	resp.Allowed = false
	resp.Result = &Status{Code: code, Reason: reason, Message: msg}
	return resp
}

// checkImage gives "" when the image is allowed, else one denial message;
// plus warnings, and whether the denial is a could-not-check.
func (s *Server) checkImage(ctx context.Context, ci ContainerImage) (denial string, warnings []string, errored bool) {
	ref := ci.Image
	if err := ctx.Err(); err != nil {
		// The answer is being sent without this image: starting its
		// check now would only load the registry.
		return fmt.Sprintf("%s %s: could not be checked: no answer within the review deadline: %v", ci.Where, ref, err), nil, true
	}
	if !verify.IsDigestRef(ref) {
		if !s.policy.Admission.AllowTags {
			return fmt.Sprintf("%s %s: not by digest (use image@sha256:...; the policy does not resolve tags)", ci.Where, ref), nil, false
		}
		// Registry options only here: a cache hit by digest needs none.
		d, err := verify.ResolveDigestRef(ref, s.o.Verifier.RemoteOptionsFor(ctx))
		if err != nil {
			s.registryErrors.Inc()
			return fmt.Sprintf("%s %s: could not be checked: %v", ci.Where, ref, err), nil, true
		}
		ref = d
	}
	res, hit, err := s.verdict(ctx, ref)
	if hit {
		s.cacheHits.Inc()
	} else {
		s.cacheMisses.Inc()
	}
	if err != nil {
		s.registryErrors.Inc()
		return fmt.Sprintf("%s %s: could not be checked: %v", ci.Where, ref, err), nil, true
	}
	for _, c := range res.Warnings() {
		warnings = append(warnings, fmt.Sprintf("%s %s: %s", ci.Where, ci.Image, line(c)))
	}
	if !res.Allowed() {
		var why []string
		for _, c := range res.Failures() {
			why = append(why, line(c))
		}
		sort.Strings(why)
		return fmt.Sprintf("%s %s: %s", ci.Where, ci.Image, strings.Join(why, ", ")), warnings, false
	}
	return "", warnings, false
}

func line(c verify.Check) string {
	s := c.Name
	if c.Expected != "" || c.Actual != "" {
		s += fmt.Sprintf(" (expected %s, got %s)", c.Expected, c.Actual)
	}
	if c.Message != "" {
		s += ": " + c.Message
	}
	return s
}

// verdict returns the cached result for a digest reference, or verifies
// it once for all concurrent callers. Errors are not cached: a registry
// that comes back gets a fresh look on the next request.
func (s *Server) verdict(ctx context.Context, digestRef string) (*verify.Result, bool, error) {
	now := s.o.Now()
	s.mu.Lock()
	if c, ok := s.cache[digestRef]; ok && now.Before(c.expires) {
		s.mu.Unlock()
		return c.res, true, nil
	}
	s.mu.Unlock()
	ch := s.group.DoChan(digestRef, func() (any, error) {
		// Shared by every waiter: not tied to the first caller's request,
		// still bounded by the review deadline.
		vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.o.Deadline)
		defer cancel()
		select {
		case s.verifying <- struct{}{}:
			defer func() { <-s.verifying }()
		case <-vctx.Done():
			return nil, fmt.Errorf("%d image checks already in flight: %w", MaxConcurrentVerifications, vctx.Err())
		}
		res, err := s.o.Verifier.Verify(vctx, verify.Request{Image: digestRef})
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		s.evictLocked(now)
		s.cache[digestRef] = cached{res: res, expires: now.Add(s.o.CacheTTL)}
		s.mu.Unlock()
		return res, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, false, r.Err
		}
		return r.Val.(*verify.Result), false, nil
	case <-ctx.Done():
		return nil, false, fmt.Errorf("no answer within the review deadline: %w", ctx.Err())
	}
}

// maxCacheEntries bounds the cache's memory.
const maxCacheEntries = 10000

func (s *Server) evictLocked(now time.Time) {
	if len(s.cache) < maxCacheEntries {
		return
	}
	for k, c := range s.cache {
		if !now.Before(c.expires) {
			delete(s.cache, k)
		}
	}
	for k := range s.cache {
		if len(s.cache) < maxCacheEntries {
			break
		}
		delete(s.cache, k)
	}
}
