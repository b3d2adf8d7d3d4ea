package harness

import (
	"bytes"
	"io"
	"net/http"
)

// Forward sends the request r (whose body the caller already read into
// body) to target, the base URL of kmslocal, and returns the answer's
// status, headers and body. Test proxies that count, hold or rewrite calls
// between the function and the emulator use it.
func Forward(r *http.Request, target string, body []byte) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(r.Context(), r.Method, target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header = r.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, out, err
}

// WriteAnswer writes a forwarded answer back to the client.
func WriteAnswer(w http.ResponseWriter, status int, header http.Header, body []byte) {
	for k, v := range header {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
