package dags

// Expand is a mapped task's expansion, as dag-factory 1.x writes it:
// partial holds the fields every mapped instance shares, expand (or
// expand_kwargs) the ones that vary.
type Expand struct{}
