package db_test

import (
	"testing"

	"github.com/microshop/microshop/services/payment/internal/db"
	"github.com/microshop/microshop/services/payment/internal/payment"
	"github.com/microshop/microshop/services/payment/internal/payment/paymenttest"
)

func TestStoreContract(t *testing.T) {
	for engine, newDatabase := range paymenttest.Databases(t) {
		t.Run(engine, func(t *testing.T) {
			paymenttest.StoreContract(t, func(t *testing.T) payment.Store {
				return db.NewStore(paymenttest.Open(t, newDatabase(t)))
			})
		})
	}
}
