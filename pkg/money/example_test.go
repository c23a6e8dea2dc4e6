package money_test

import (
	"errors"
	"fmt"

	"github.com/microshop/microshop/pkg/money"
)

func Example() {
	mug := money.Amount{Minor: 1250, Currency: "EUR"}
	line, err := mug.Mul(2)
	if err != nil {
		panic(err)
	}
	total, err := line.Add(money.Amount{Minor: 1999, Currency: "EUR"})
	fmt.Println(total, err)

	_, err = total.Add(money.Amount{Minor: 100, Currency: "USD"})
	fmt.Println(errors.Is(err, money.ErrCurrencyMismatch), err)
	// Output:
	// 4499 EUR <nil>
	// true add USD to EUR: currencies differ
}
