package servicetest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Upload is one HTTP/1.1 request with a body, sent over its own TCP
// connection byte by byte, the way a client that cannot be argued with
// sends it: for tests of how a server refuses bodies it does not want.
type Upload struct {
	Method, Path string
	// Header holds extra request headers; Host, Content-Type
	// (application/json) and the framing headers are set already.
	Header map[string]string
	// Size is how many bytes of body the client sends.
	Size int64
	// Chunked sends the body with Transfer-Encoding: chunked instead of a
	// Content-Length.
	Chunked bool
	// ExpectContinue sends Expect: 100-continue and then the body only
	// after a 100 Continue, never after a final answer.
	ExpectContinue bool
}

// UploadResult is what the client saw.
type UploadResult struct {
	// Interim lists the 1xx statuses received before the answer.
	Interim []int
	Status  int
	Header  http.Header
	Body    []byte
	// Err is the error that kept the client from reading the answer, such
	// as a connection reset; nil when the answer was read.
	Err error
	// Close reports that the answer said Connection: close.
	Close bool
	// AfterAnswer is, when Close, what reading the connection after the
	// answer returned: io.EOF when the server closed it cleanly, a reset
	// error when it did not.
	AfterAnswer error
}

// Send sends u to the server at addr (host:port) and reads its answer.
func (u Upload) Send(t testing.TB, addr string) UploadResult {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))

	var head strings.Builder
	fmt.Fprintf(&head, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n", u.Method, u.Path, addr)
	if u.Chunked {
		head.WriteString("Transfer-Encoding: chunked\r\n")
	} else {
		fmt.Fprintf(&head, "Content-Length: %d\r\n", u.Size)
	}
	if u.ExpectContinue {
		head.WriteString("Expect: 100-continue\r\n")
	}
	for k, v := range u.Header {
		fmt.Fprintf(&head, "%s: %s\r\n", k, v)
	}
	head.WriteString("\r\n")
	if _, err := io.WriteString(conn, head.String()); err != nil {
		t.Fatalf("write request head: %v", err)
	}

	goAhead := make(chan bool, 1) // true: send the body
	if !u.ExpectContinue {
		goAhead <- true
	}
	written := make(chan struct{})
	go func() {
		defer close(written)
		if !<-goAhead {
			return
		}
		// Write errors are expected once the server has answered and
		// closed; what counts is what the reader saw.
		_ = u.writeBody(conn)
	}()

	var res UploadResult
	br := bufio.NewReader(conn)
	req, _ := http.NewRequest(u.Method, u.Path, nil)
	for {
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			res.Err = err
			break
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 {
			res.Interim = append(res.Interim, resp.StatusCode)
			if resp.StatusCode == http.StatusContinue {
				sendOnce(goAhead, true)
			}
			continue
		}
		res.Status, res.Header, res.Close = resp.StatusCode, resp.Header, resp.Close
		res.Body, res.Err = io.ReadAll(resp.Body)
		resp.Body.Close()
		break
	}
	sendOnce(goAhead, false)
	if res.Err == nil && res.Close {
		_, res.AfterAnswer = br.ReadByte()
	}
	conn.Close()
	<-written
	return res
}

func sendOnce(ch chan bool, v bool) {
	select {
	case ch <- v:
	default:
	}
}

// writeBody writes Size bytes of one JSON object, {"a":"aaa…"} (shorter
// sizes are a's only), in 32 KiB pieces.
func (u Upload) writeBody(w io.Writer) error {
	body := io.LimitReader(aaa{}, u.Size)
	if u.Size >= 8 {
		body = io.MultiReader(strings.NewReader(`{"a":"`), io.LimitReader(aaa{}, u.Size-8), strings.NewReader(`"}`))
	}
	piece := make([]byte, 32<<10)
	for {
		n, err := io.ReadFull(body, piece)
		if n > 0 {
			var werr error
			if u.Chunked {
				_, werr = fmt.Fprintf(w, "%x\r\n%s\r\n", n, piece[:n])
			} else {
				_, werr = w.Write(piece[:n])
			}
			if werr != nil {
				return werr
			}
		}
		if err != nil { // io.EOF or io.ErrUnexpectedEOF: all sent
			break
		}
	}
	if u.Chunked {
		_, err := io.WriteString(w, "0\r\n\r\n")
		return err
	}
	return nil
}

// aaa reads as an endless run of 'a'.
type aaa struct{}

func (aaa) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	return len(p), nil
}
