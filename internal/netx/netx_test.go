package netx

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestIdleBodyTimesOut(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("first bytes"))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c := Client(Timeouts{Idle: 200 * time.Millisecond})
	resp, err := c.Get(srv.URL + "/blob")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	var ie *IdleError
	if !errors.As(err, &ie) {
		t.Fatalf("want an idle timeout, got %v", err)
	}
	if !strings.Contains(err.Error(), srv.URL+"/blob") {
		t.Errorf("message does not name the URL: %v", err)
	}
}

func TestResponseHeaderTimeoutNamesURL(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c := Client(Timeouts{ResponseHeader: 200 * time.Millisecond})
	_, err := c.Get(srv.URL + "/hang")
	if err == nil {
		t.Fatal("a server that never answers gave no error")
	}
	if !strings.Contains(err.Error(), "/hang") || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("message should name the URL and say it timed out: %v", err)
	}
}

func TestCompleteBodyReadsNormally(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("whole body"))
	}))
	defer srv.Close()
	resp, err := DefaultClient.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(b) != "whole body" {
		t.Fatalf("got %q, %v", b, err)
	}
}
