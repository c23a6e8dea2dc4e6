package api

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/microshop/microshop/pkg/problem"
)

// Documents reports whether the document has an operation for method and
// path (e.g. "GET", "/api/v1/orders/x").
func (v *Validator) Documents(method, path string) bool {
	req, err := http.NewRequest(method, path, nil)
	if err != nil {
		return false
	}
	_, _, err = v.router.FindRoute(req)
	return err == nil
}

// CheckRequest validates req — path, query, headers and body — against the
// document's operation for it, before a handler sees it. Security is not
// checked here: the gateway authenticates before it validates. The body, if
// read, is put back for the handler. A request the document refuses is a
// *problem.Details error:
//
//   - 404 when the document has no operation for the request;
//   - 415 for a body of a media type the operation does not take;
//   - 413 for a body past the limit its reader enforces (see
//     httpserver.LimitBody);
//   - 400 for a path, query or header parameter that breaks its schema, a
//     missing required body, or a body that is not JSON;
//   - 422 for a JSON body that breaks its schema.
//
// Every field at fault is listed under errors, named as the handlers name
// them: "lines[0].quantity", "limit", "Idempotency-Key".
func (v *Validator) CheckRequest(ctx context.Context, req *http.Request) error {
	route, params, err := v.router.FindRoute(req)
	if err != nil {
		p := problem.New(http.StatusNotFound, "no route for "+req.URL.Path)
		return &p
	}
	if p := checkMediaType(req, route.Operation); p != nil {
		return p
	}
	in := &openapi3filter.RequestValidationInput{
		Request:    req,
		PathParams: params,
		Route:      route,
		Options: &openapi3filter.Options{
			AuthenticationFunc:  openapi3filter.NoopAuthenticationFunc,
			MultiError:          true,
			SkipSettingDefaults: true, // handlers see what the client sent
		},
	}
	if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
		return requestProblem(err)
	}
	return nil
}

// checkMediaType refuses a body the operation does not take. kin-openapi
// reports it as a message only, so it is checked here first.
func checkMediaType(req *http.Request, op *openapi3.Operation) *problem.Details {
	if op.RequestBody == nil || req.ContentLength == 0 || req.Body == nil || req.Body == http.NoBody {
		return nil
	}
	content := op.RequestBody.Value.Content
	mediaType, _, err := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if err == nil && content[mediaType] != nil {
		return nil
	}
	accepted := make([]string, 0, len(content))
	for t := range content {
		accepted = append(accepted, t)
	}
	slices.Sort(accepted)
	p := problem.New(http.StatusUnsupportedMediaType, "Content-Type must be "+strings.Join(accepted, " or "))
	return &p
}

// requestProblem turns kin-openapi's findings into one problem: the most
// fundamental status found (413, then 400, then 422) and every field.
func requestProblem(err error) *problem.Details {
	var f findings
	f.add(err, "")
	p := problem.Details{Status: http.StatusUnprocessableEntity, Title: "Invalid request", Detail: "one or more fields are invalid", Errors: f.fields}
	switch {
	case f.tooLarge != nil:
		p = problem.New(http.StatusRequestEntityTooLarge, fmt.Sprintf("body is larger than %d bytes", f.tooLarge.Limit))
	case f.badRequest:
		p.Status, p.Title, p.Detail = http.StatusBadRequest, http.StatusText(http.StatusBadRequest), "the request breaks the API's contract"
	}
	return &p
}

type findings struct {
	fields     []problem.FieldError
	badRequest bool // a parameter or the body's framing is wrong, not a body field
	tooLarge   *http.MaxBytesError
}

// add records err, found in the parameter named param ("" for the body).
func (f *findings) add(err error, param string) {
	switch e := err.(type) {
	case openapi3.MultiError:
		for _, one := range e {
			f.add(one, param)
		}
		return
	case *openapi3filter.RequestError:
		if e.Parameter != nil {
			f.badRequest, param = true, e.Parameter.Name
		}
		if e.Err != nil {
			f.add(e.Err, param)
			return
		}
		f.bad(param, e.Reason)
		return
	case *openapi3.SchemaError:
		field := fieldPath(e)
		if param != "" {
			f.badRequest, field = true, param
		}
		f.fields = append(f.fields, problem.FieldError{Field: field, Message: schemaMessage(e)})
		return
	}
	var (
		tooBig *http.MaxBytesError
		parse  *openapi3filter.ParseError
	)
	switch {
	case errors.As(err, &tooBig):
		f.tooLarge = tooBig
	case errors.Is(err, openapi3filter.ErrInvalidRequired):
		f.bad(param, "is required")
	case errors.Is(err, openapi3filter.ErrInvalidEmptyValue):
		f.bad(param, "must not be empty")
	case errors.As(err, &parse):
		f.bad(param, "is not valid: "+parse.Error())
	default:
		f.bad(param, "is not valid: "+err.Error())
	}
}

// bad records a fault of a parameter or of the body as a whole, rather
// than of a field in it.
func (f *findings) bad(param, message string) {
	f.badRequest = true
	if param == "" {
		param = "(body)"
	}
	f.fields = append(f.fields, problem.FieldError{Field: param, Message: message})
}

// fieldPath names the field a schema error is about the way the handlers
// do: "lines[0].quantity"; "(body)" for the body as a whole.
func fieldPath(e *openapi3.SchemaError) string {
	var b strings.Builder
	for _, key := range e.JSONPointer() {
		if _, err := strconv.Atoi(key); err == nil {
			b.WriteString("[" + key + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(key)
	}
	// An unknown property is reported on its object; name the property.
	if name, ok := unsupportedProperty(e); ok {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(name)
	}
	if b.Len() == 0 {
		return "(body)"
	}
	return b.String()
}

func unsupportedProperty(e *openapi3.SchemaError) (string, bool) {
	rest, ok := strings.CutPrefix(e.Reason, "property ")
	if !ok || e.SchemaField != "properties" || !strings.HasSuffix(rest, " is unsupported") {
		return "", false
	}
	name, err := strconv.Unquote(strings.TrimSuffix(rest, " is unsupported"))
	return name, err == nil
}

func schemaMessage(e *openapi3.SchemaError) string {
	switch {
	case e.SchemaField == "required":
		return "is required"
	case e.SchemaField == "properties":
		return "is not a known field"
	default:
		return e.Reason
	}
}
