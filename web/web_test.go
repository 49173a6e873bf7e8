package web

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
)

func TestHandlerServesTheModule(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/static/wsgate.js")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for k, want := range map[string]string{
		"Content-Type":           "text/javascript; charset=utf-8",
		"X-Content-Type-Options": "nosniff",
		"Cache-Control":          "no-cache",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	src, err := os.ReadFile("wsgate.js")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(body, src) {
		t.Fatal("the body is not wsgate.js")
	}
	if !bytes.Contains(body, []byte("export class WsgateClient")) {
		t.Fatal("the module does not export WsgateClient")
	}

	tag := resp.Header.Get("ETag")
	if len(tag) < 10 || tag[0] != '"' {
		t.Fatalf("ETag = %q, want a strong validator", tag)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/wsgate.js", nil)
	req.Header.Set("If-None-Match", tag)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match: status %d, want 304", resp.StatusCode)
	}
}

func TestHandlerMethods(t *testing.T) {
	for method, want := range map[string]int{
		http.MethodHead:   http.StatusOK,
		http.MethodPost:   http.StatusMethodNotAllowed,
		http.MethodPut:    http.StatusMethodNotAllowed,
		http.MethodDelete: http.StatusMethodNotAllowed,
	} {
		rec := httptest.NewRecorder()
		Handler().ServeHTTP(rec, httptest.NewRequest(method, "/wsgate.js", nil))
		if rec.Code != want {
			t.Errorf("%s: status %d, want %d", method, rec.Code, want)
		}
		if want == http.StatusMethodNotAllowed && rec.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: Allow = %q", method, rec.Header().Get("Allow"))
		}
		if method == http.MethodHead && rec.Body.Len() != 0 {
			t.Errorf("HEAD has a body")
		}
	}
}
