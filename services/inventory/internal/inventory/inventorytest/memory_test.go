package inventorytest_test

import (
	"testing"

	"github.com/microshop/microshop/services/inventory/internal/inventory"
	"github.com/microshop/microshop/services/inventory/internal/inventory/inventorytest"
)

func TestMemoryStore(t *testing.T) {
	inventorytest.RunStoreContract(t, func(_ *testing.T, catalog ...inventory.ProductWithStock) inventory.Store {
		return inventorytest.NewMemoryStore(catalog...)
	})
}
