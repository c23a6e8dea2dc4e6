package pgtest

import (
	"strings"
	"testing"
)

func TestDatabaseName(t *testing.T) {
	tests := []struct {
		name     string
		testName string
		want     string
	}{
		{name: "plain", testName: "TestOrders", want: "t_testorders_x1"},
		{name: "subtest", testName: "TestOrders/paid order", want: "t_testorders_paid_order_x1"},
		{name: "runs folded", testName: "TestOrders/a -- b", want: "t_testorders_a_b_x1"},
		{name: "non-ASCII", testName: "TestÄrger", want: "t_test_rger_x1"},
		{name: "trailing separator", testName: "TestOrders/", want: "t_testorders_x1"},
		{name: "digits kept", testName: "TestV2/#01", want: "t_testv2_01_x1"},
		{
			name:     "long name cut to 63 bytes",
			testName: "Test" + strings.Repeat("a", 100),
			want:     "t_test" + strings.Repeat("a", 54) + "_x1",
		},
		{
			name:     "cut lands on a separator",
			testName: "Test" + strings.Repeat("a", 53) + "/b",
			want:     "t_test" + strings.Repeat("a", 53) + "_x1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := databaseName(tt.testName, "x1"); got != tt.want {
				t.Errorf("databaseName(%q, %q) = %q, want %q", tt.testName, "x1", got, tt.want)
			}
		})
	}
}
