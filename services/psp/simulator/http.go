package simulator

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/microshop/microshop/pkg/health"
	"github.com/microshop/microshop/pkg/httpserver"
	"github.com/microshop/microshop/pkg/problem"
)

// Routes adds the simulator's API to r:
//
//	POST /v1/charges                      create a charge (Idempotency-Key header)
//	GET  /v1/charges?idempotency_key=K    the charge created under K
//	POST /v1/refunds                      create a refund (Idempotency-Key header)
//	GET  /v1/refunds?idempotency_key=K    the refund created under K
//	GET  /v1/admin/faults                 the faults in force
//	PUT  /v1/admin/faults                 replace them
//	GET  /v1/admin/charges                every charge recorded, oldest first
//	GET  /v1/admin/refunds                every refund recorded, oldest first
//
// Faults apply to the four charge and refund routes. The admin listings are
// for checkers (the chaos harness reads the PSP's ground truth from them).
func (s *Simulator) Routes(r gin.IRouter) {
	v1 := r.Group("/v1")
	faulty := v1.Group("", s.applyFaults)
	faulty.POST("/charges", s.createCharge)
	faulty.GET("/charges", s.getCharge)
	faulty.POST("/refunds", s.createRefund)
	faulty.GET("/refunds", s.getRefund)
	v1.GET("/admin/faults", s.getFaults)
	v1.PUT("/admin/faults", s.putFaults)
	v1.GET("/admin/charges", s.listCharges)
	v1.GET("/admin/refunds", s.listRefunds)
}

// listing is the body of the admin listings: {"items": [...]}.
type listing[T any] struct {
	Items []T `json:"items"`
}

func (s *Simulator) listCharges(c *gin.Context) {
	c.JSON(http.StatusOK, listing[Charge]{Items: s.Charges()})
}

func (s *Simulator) listRefunds(c *gin.Context) {
	c.JSON(http.StatusOK, listing[Refund]{Items: s.Refunds()})
}

// Handler returns the simulator's API on the router every microshop service
// uses (problem+json errors, /healthz, /readyz), ready for httptest.NewServer.
func (s *Simulator) Handler() http.Handler {
	r := httpserver.NewRouter(s.log, health.New(0))
	s.Routes(r)
	return r
}

// applyFaults delays the request by the latency fault, then fails it with
// the failure fault's probability, before anything is recorded.
func (s *Simulator) applyFaults(c *gin.Context) {
	// Read the body first: net/http notices a client hanging up only once
	// the body has been read, and a client that leaves during the delay
	// must cancel its request. DecodeJSON still enforces the size limit.
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, httpserver.DefaultMaxBody+1))
	if err != nil {
		c.Abort() // the client went away while sending
		return
	}
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
	if err := s.wait(c.Request.Context(), s.Faults().Latency); err != nil {
		c.Abort() // the client went away during the delay: it gets nothing, nothing happened
		return
	}
	if s.injectFailure() {
		s.writeError(c, ErrInjectedFailure)
		c.Abort()
		return
	}
	c.Next()
}

// wait pauses for d, until the client goes away (an error) or until Close.
func (s *Simulator) wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-s.closed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

const (
	headerKey      = "Idempotency-Key"
	headerReplayed = "Idempotent-Replayed"
)

func (s *Simulator) createCharge(c *gin.Context) {
	key := c.GetHeader(headerKey)
	if fe := validateKey(key); fe != nil {
		s.writeError(c, keyProblem(fe))
		return
	}
	var req ChargeRequest
	if err := httpserver.DecodeJSON(c.Writer, c.Request, &req, 0); err != nil {
		s.writeError(c, err)
		return
	}
	ch, replayed, err := s.Charge(key, req)
	if err != nil {
		s.writeError(c, err)
		return
	}
	if replayed {
		c.Header(headerReplayed, "true")
		c.JSON(http.StatusOK, ch)
		return
	}
	if req.CardNumber == CardHangs {
		if err := s.wait(c.Request.Context(), s.hang); err != nil {
			return // the client gave up; the charge stands, to be found by its key
		}
	}
	c.JSON(http.StatusCreated, ch)
}

func (s *Simulator) createRefund(c *gin.Context) {
	key := c.GetHeader(headerKey)
	if fe := validateKey(key); fe != nil {
		s.writeError(c, keyProblem(fe))
		return
	}
	var req RefundRequest
	if err := httpserver.DecodeJSON(c.Writer, c.Request, &req, 0); err != nil {
		s.writeError(c, err)
		return
	}
	r, replayed, err := s.Refund(key, req)
	if err != nil {
		s.writeError(c, err)
		return
	}
	if replayed {
		c.Header(headerReplayed, "true")
		c.JSON(http.StatusOK, r)
		return
	}
	c.JSON(http.StatusCreated, r)
}

func (s *Simulator) getCharge(c *gin.Context) {
	key, err := keyQuery(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	ch, err := s.ChargeByKey(key)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, ch)
}

func (s *Simulator) getRefund(c *gin.Context) {
	key, err := keyQuery(c)
	if err != nil {
		s.writeError(c, err)
		return
	}
	r, err := s.RefundByKey(key)
	if err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, r)
}

// keyQuery reads the required ?idempotency_key= of a lookup.
func keyQuery(c *gin.Context) (string, error) {
	key := c.Query("idempotency_key")
	if key == "" {
		p := problem.New(http.StatusBadRequest, "query parameter idempotency_key is required")
		p.Errors = []problem.FieldError{{Field: "idempotency_key", Message: "is required"}}
		return "", &p
	}
	return key, nil
}

// faultsBody is the JSON form of Faults: {"latency":"250ms","failure_rate":0.2}.
// Pointers tell a missing field from a zero one in PUT bodies.
type faultsBody struct {
	Latency     *string  `json:"latency"`
	FailureRate *float64 `json:"failure_rate"`
}

func (s *Simulator) getFaults(c *gin.Context) {
	c.JSON(http.StatusOK, toFaultsBody(s.Faults()))
}

func (s *Simulator) putFaults(c *gin.Context) {
	var body faultsBody
	if err := httpserver.DecodeJSON(c.Writer, c.Request, &body, 0); err != nil {
		s.writeError(c, err)
		return
	}
	var (
		f    Faults
		errs []problem.FieldError
	)
	if body.Latency == nil {
		errs = append(errs, problem.FieldError{Field: "latency", Message: "is required"})
	} else if d, err := time.ParseDuration(*body.Latency); err != nil {
		errs = append(errs, problem.FieldError{Field: "latency", Message: "must be a duration such as 250ms or 1s"})
	} else {
		f.Latency = d
	}
	if body.FailureRate == nil {
		errs = append(errs, problem.FieldError{Field: "failure_rate", Message: "is required"})
	} else {
		f.FailureRate = *body.FailureRate
	}
	errs = append(errs, f.validate()...) // a missing or unparsable value stays 0, which is valid
	if len(errs) > 0 {
		s.writeError(c, httpserver.Invalid(errs...))
		return
	}
	if err := s.SetFaults(f); err != nil {
		s.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, toFaultsBody(f))
}

func toFaultsBody(f Faults) faultsBody {
	latency := f.Latency.String()
	return faultsBody{Latency: &latency, FailureRate: &f.FailureRate}
}

// writeError answers err as problem+json: the one place the simulator's
// errors become HTTP statuses. Only unexpected errors are logged.
func (s *Simulator) writeError(c *gin.Context, err error) {
	var p *problem.Details
	switch {
	case errors.As(err, &p):
		problem.Write(c.Writer, *p)
	case errors.Is(err, ErrNotFound):
		problem.Write(c.Writer, problem.New(http.StatusNotFound, err.Error()))
	case errors.Is(err, ErrIdempotencyConflict):
		problem.Write(c.Writer, problem.New(http.StatusConflict, err.Error()))
	case errors.Is(err, ErrChargeDeclined):
		problem.Write(c.Writer, *httpserver.Invalid(problem.FieldError{Field: "charge_id", Message: err.Error()}))
	case errors.Is(err, ErrRefundExceedsCharge):
		problem.Write(c.Writer, *httpserver.Invalid(problem.FieldError{Field: "amount", Message: err.Error()}))
	case errors.Is(err, ErrInjectedFailure):
		problem.Write(c.Writer, problem.New(http.StatusServiceUnavailable, err.Error()))
	default:
		s.log.ErrorContext(c.Request.Context(), "internal error", slog.String("path", c.Request.URL.Path), slog.Any("error", err))
		problem.Write(c.Writer, problem.New(http.StatusInternalServerError, ""))
	}
}
