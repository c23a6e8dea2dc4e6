package paymenttest_test

import (
	"testing"

	"github.com/microshop/microshop/services/payment/internal/payment"
	"github.com/microshop/microshop/services/payment/internal/payment/paymenttest"
)

func TestMemoryStore(t *testing.T) {
	paymenttest.StoreContract(t, func(*testing.T) payment.Store { return paymenttest.NewMemoryStore() })
}
