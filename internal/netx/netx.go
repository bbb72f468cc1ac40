// Package netx holds the one HTTP configuration every network call of
// mlenv uses: artifact downloads, package index look-ups and registry
// pulls and pushes. Every phase of a request has a bound, so that a server
// that hangs gives a clear error that names the URL and the phase instead
// of a command that never ends.
package netx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Timeouts bounds each phase of an HTTP exchange. The zero value of a field
// means its default (see DefaultTimeouts).
type Timeouts struct {
	Connect        time.Duration // TCP connect
	TLSHandshake   time.Duration // TLS handshake
	ResponseHeader time.Duration // from request sent to response headers
	Idle           time.Duration // longest wait for the next body bytes
}

// DefaultTimeouts are generous for slow links but end a hung server in
// well under a minute.
var DefaultTimeouts = Timeouts{
	Connect:        15 * time.Second,
	TLSHandshake:   15 * time.Second,
	ResponseHeader: 30 * time.Second,
	Idle:           30 * time.Second,
}

func (t Timeouts) withDefaults() Timeouts {
	if t.Connect <= 0 {
		t.Connect = DefaultTimeouts.Connect
	}
	if t.TLSHandshake <= 0 {
		t.TLSHandshake = DefaultTimeouts.TLSHandshake
	}
	if t.ResponseHeader <= 0 {
		t.ResponseHeader = DefaultTimeouts.ResponseHeader
	}
	if t.Idle <= 0 {
		t.Idle = DefaultTimeouts.Idle
	}
	return t
}

// Transport returns an http.RoundTripper with every phase bounded: connect,
// TLS handshake, response headers, and the gap between body reads (a body
// that stalls for longer than Idle fails with an *IdleError).
func Transport(t Timeouts) http.RoundTripper {
	t = t.withDefaults()
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.DialContext = (&net.Dialer{Timeout: t.Connect, KeepAlive: 30 * time.Second}).DialContext
	base.TLSHandshakeTimeout = t.TLSHandshake
	base.ResponseHeaderTimeout = t.ResponseHeader
	base.ExpectContinueTimeout = time.Second
	return &idleTransport{base: base, idle: t.Idle}
}

// Client is an http.Client over Transport(t).
func Client(t Timeouts) *http.Client {
	return &http.Client{Transport: Transport(t)}
}

// DefaultClient is Client(DefaultTimeouts), shared so that connections are
// reused.
var DefaultClient = Client(DefaultTimeouts)

// IdleError says that a response body stopped sending data.
type IdleError struct {
	URL  string
	Idle time.Duration
}

func (e *IdleError) Error() string {
	return fmt.Sprintf("%s sent no data for %s (idle timeout)", e.URL, e.Idle)
}

// Timeout marks the error as a timeout for net.Error-style checks.
func (e *IdleError) Timeout() bool { return true }

type idleTransport struct {
	base http.RoundTripper
	idle time.Duration
}

func (t *idleTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	resp, err := t.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel(nil)
		return nil, describe(req, err)
	}
	ib := &idleBody{rc: resp.Body, cancel: cancel, idle: t.idle, url: req.URL.Redacted()}
	ib.timer = time.AfterFunc(t.idle, ib.expire)
	resp.Body = ib
	return resp, nil
}

// describe names the URL and the phase that timed out, which net/http's own
// messages do not always do.
func describe(req *http.Request, err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%s %s: timed out: %w", req.Method, req.URL.Redacted(), err)
	}
	return err
}

type idleBody struct {
	rc     io.ReadCloser
	cancel context.CancelCauseFunc
	idle   time.Duration
	url    string
	timer  *time.Timer

	mu      sync.Mutex
	expired bool
}

func (b *idleBody) expire() {
	b.mu.Lock()
	b.expired = true
	b.mu.Unlock()
	b.cancel(&IdleError{URL: b.url, Idle: b.idle})
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.timer.Reset(b.idle)
	}
	if err != nil && err != io.EOF {
		b.mu.Lock()
		expired := b.expired
		b.mu.Unlock()
		if expired {
			return n, &IdleError{URL: b.url, Idle: b.idle}
		}
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	err := b.rc.Close()
	b.cancel(nil)
	return err
}
