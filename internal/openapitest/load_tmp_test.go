package openapitest_test

import (
	"testing"

	"github.com/tollgate-dev/tollgate/internal/openapitest"
)

func TestLoad(t *testing.T) {
	v := openapitest.New(t)
	_ = v
}
