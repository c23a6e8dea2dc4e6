package inventorytest

import (
	"errors"
	"reflect"

	"github.com/google/go-cmp/cmp"
)

// EquateErrors is a cmp option under which two errors are equal when one is
// in the other's chain: the same sentinel (errors.Is), or an error of the
// same type with equal contents, such as *inventory.InsufficientStockError
// (errors.As). Unlike cmpopts.EquateErrors, typed errors need not be the
// same pointer.
var EquateErrors = cmp.FilterValues(bothErrors, cmp.Comparer(func(x, y any) bool {
	return inChain(x.(error), y.(error)) || inChain(y.(error), x.(error))
}))

func bothErrors(x, y any) bool {
	_, xErr := x.(error)
	_, yErr := y.(error)
	return xErr && yErr
}

func inChain(chain, want error) bool {
	if errors.Is(chain, want) {
		return true
	}
	target := reflect.New(reflect.TypeOf(want))
	return errors.As(chain, target.Interface()) && reflect.DeepEqual(target.Elem().Interface(), want)
}
