package db_test

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/pkg/money"
	"github.com/microshop/microshop/services/payment/internal/db"
	"github.com/microshop/microshop/services/payment/internal/payment"
	"github.com/microshop/microshop/services/payment/internal/payment/paymenttest"
	"github.com/microshop/microshop/services/payment/internal/psp"
	"github.com/microshop/microshop/services/psp/simulator"
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

// TestNoCardNumbersInTheDatabase charges cards that succeed, are declined
// and are refused by the PSP through the service on a real database, then
// reads every column of every payment row: no card number may be there,
// whatever the store's fields are called.
func TestNoCardNumbersInTheDatabase(t *testing.T) {
	sim := simulator.New(simulator.Settings{Hang: time.Hour})
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	cards := []string{simulator.CardSucceeds, simulator.CardDeclined, "4242424242424241"}
	for engine, newDatabase := range paymenttest.Databases(t) {
		t.Run(engine, func(t *testing.T) {
			database := paymenttest.Open(t, newDatabase(t))
			client := psp.New(srv.URL, 5*time.Second, nil)
			t.Cleanup(client.Close)
			svc := payment.NewService(db.NewStore(database), client, time.Now)
			for i, card := range cards {
				key := fmt.Sprintf("%s-%d", engine, i)
				req := payment.ChargeRequest{OrderID: "order-" + key, Amount: money.Amount{Minor: 100, Currency: "EUR"}, CardNumber: card, IdempotencyKey: key}
				if _, err := svc.Charge(t.Context(), req); err != nil {
					t.Fatalf("Charge with card %s: %v", card, err)
				}
			}
			var rows []map[string]any
			if err := database.Raw("SELECT * FROM payments").Scan(&rows).Error; err != nil {
				t.Fatal(err)
			}
			if len(rows) != len(cards) {
				t.Fatalf("%d payment rows, want %d", len(rows), len(cards))
			}
			for _, row := range rows {
				for column, v := range row {
					if s := fmt.Sprint(v); strings.Contains(s, "4242424242") || strings.Contains(s, "4000000000") {
						t.Errorf("column %s holds %q: card numbers must not be stored", column, s)
					}
				}
			}
		})
	}
}
