package ordertest_test

import (
	"testing"

	"github.com/microshop/microshop/services/order/internal/order"
	"github.com/microshop/microshop/services/order/internal/order/ordertest"
)

func TestMemoryStore(t *testing.T) {
	ordertest.RunStoreContract(t, func(*testing.T) order.Store { return ordertest.NewMemoryStore() })
}
