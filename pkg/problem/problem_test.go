package problem_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/microshop/microshop/pkg/problem"
)

func TestWrite(t *testing.T) {
	tests := []struct {
		name string
		in   problem.Details
		want problem.Details
	}{
		{
			name: "title filled from status",
			in:   problem.Details{Status: http.StatusNotFound, Detail: "no order o-1"},
			want: problem.Details{Title: "Not Found", Status: 404, Detail: "no order o-1"},
		},
		{
			name: "field errors kept",
			in: problem.Details{Status: 422, Title: "Invalid request", Errors: []problem.FieldError{
				{Field: "lines[0].quantity", Message: "must be at least 1"},
			}},
			want: problem.Details{Status: 422, Title: "Invalid request", Errors: []problem.FieldError{
				{Field: "lines[0].quantity", Message: "must be at least 1"},
			}},
		},
		{
			name: "New uses the status text",
			in:   problem.New(http.StatusConflict, "key reused"),
			want: problem.Details{Title: "Conflict", Status: 409, Detail: "key reused"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			problem.Write(rec, tt.in)
			if rec.Code != tt.want.Status {
				t.Errorf("status = %d, want %d", rec.Code, tt.want.Status)
			}
			if got := rec.Header().Get("Content-Type"); got != problem.ContentType {
				t.Errorf("Content-Type = %q, want %q", got, problem.ContentType)
			}
			var got problem.Details
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("decode body %q: %v", rec.Body.String(), err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("body mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
