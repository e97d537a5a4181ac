// Package conformance holds Tollgate's run of the AuthPlane OAuth SDK
// conformance catalog (repository AuthPlane/conformance, file
// oauth-sdk-conformance-catalog.yaml): a language-neutral list of cases,
// each an RFC requirement with a setup, a stimulus and an expected outcome,
// that several OAuth SDKs translate into native tests. The package has no
// code of its own; its tests are the suite.
//
// Every catalog case id, listed in testdata/catalog-ids.txt (kept beside
// the tests so that the build never needs the network), has exactly one
// registered test, written in our own words against the real parts (the
// middleware, the introspection client, discovery, the exchange before a
// real devidp):
// real signed tokens from middleware/authtest and real httptest servers.
// A case that does not apply to Tollgate, or whose expectation differs from
// what Tollgate does, is registered as skipped with the reason. TestMain
// checks the alignment in both directions after the tests ran and fails
// the run when a case has no test or a test names no case: a catalog
// update that adds a case fails until the case is translated.
//
// With CONFORMANCE_REPORT naming a file, TestMain writes the catalog's
// report (conformance-report.json) there; make conformance does this. A
// run narrowed by -run or -skip reports the cases it left out as not_run
// and does not count them as misaligned.
//
// To move to a newer catalog: replace the ids and the catalog_version line
// of testdata/catalog-ids.txt, then register a test for every new id.
package conformance
