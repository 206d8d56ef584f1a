package invoke

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
)

// StreamPath is InvokeWithResponseStream's path.
const StreamPath = "/2021-11-15/functions/{name}/response-streaming-invocations"

// invokeStream serves InvokeWithResponseStream: the function's response as
// an AWS event stream of PayloadChunk events, sent as the runtime writes
// them, then InvokeComplete with the error and the log tail.
func (s *Server) invokeStream(w http.ResponseWriter, r *http.Request, id string) *apiError {
	fn, req, invType, e := s.parseInvoke(r, r.PathValue("name"), id, "RequestResponse", "DryRun")
	if e != nil {
		return e
	}
	if invType == "DryRun" {
		w.Header().Set("X-Amzn-RequestId", req.ID)
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	req.Streaming = true
	res, e := run(r.Context(), fn, req)
	if e != nil {
		return e
	}
	h := w.Header()
	h.Set("Content-Type", "application/vnd.amazon.eventstream")
	h.Set("X-Amz-Executed-Version", fn.cfg.Version)
	h.Set("X-Amzn-RequestId", req.ID)
	w.WriteHeader(http.StatusOK)
	out := &eventWriter{w: w, rc: http.NewResponseController(w)}

	var complete struct {
		ErrorCode    string `json:"ErrorCode,omitempty"`
		ErrorDetails string `json:"ErrorDetails,omitempty"`
		LogResult    string `json:"LogResult,omitempty"`
	}
	switch {
	case res.Stream != nil:
		buf := make([]byte, 256<<10)
		for {
			n, err := res.Stream.Read(buf)
			if n > 0 && out.send("PayloadChunk", "application/octet-stream", buf[:n]) != nil {
				_ = res.Stream.Close() // the caller left: drain, so the runtime ends cleanly
				break
			}
			if err != nil {
				break
			}
		}
		errType, errBody := res.Stream.Wait()
		complete.ErrorCode, complete.ErrorDetails = errType, string(errBody)
	case res.Error:
		complete.ErrorCode, complete.ErrorDetails = res.ErrorType, string(res.Payload)
	case len(res.Payload) > 0:
		_ = out.send("PayloadChunk", "application/octet-stream", res.Payload)
	}
	if req.Tail {
		complete.LogResult = base64.StdEncoding.EncodeToString(res.WaitLog())
	}
	b, _ := json.Marshal(complete)
	_ = out.send("InvokeComplete", "application/json", b)
	return nil
}

// eventWriter writes event-stream messages and flushes each one, so every
// chunk reaches the caller as it comes.
type eventWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (o *eventWriter) send(eventType, contentType string, payload []byte) error {
	h := []eventHeader{{":message-type", "event"}, {":event-type", eventType}, {":content-type", contentType}}
	if err := encodeEvent(o.w, h, payload); err != nil {
		return err
	}
	return o.rc.Flush()
}
