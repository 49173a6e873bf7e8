package web

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"net/http"
	"time"
)

//go:embed wsgate.js
var module []byte

// etag names this build's module; the URL carries no version, so browsers
// revalidate it (Cache-Control: no-cache) and get 304 while it is unchanged.
var etag = func() string {
	sum := sha256.Sum256(module)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}()

// Handler serves wsgate.js, whatever the request path, to GET and HEAD
// requests: as text/javascript with nosniff (browsers refuse to run a module
// of another type), a strong ETag and Cache-Control: no-cache. Conditional
// and range requests are answered by http.ServeContent. Other methods get
// 405. Mount it on the origin of the pages that import it.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
		return
	}
	h.Set("Content-Type", "text/javascript; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", etag)
	http.ServeContent(w, r, "wsgate.js", time.Time{}, bytes.NewReader(module))
}
