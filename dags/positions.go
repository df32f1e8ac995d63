package dags

// positioned is a spec that keeps where its templated fields are written
// (the nodes of the file's tree), for the template errors of its load.
type positioned interface {
	withoutPositions() OperatorSpec
}

func (s BashSpec) withoutPositions() OperatorSpec          { s.at = nil; return s }
func (s PodSpec) withoutPositions() OperatorSpec           { s.at = nil; return s }
func (s HttpSpec) withoutPositions() OperatorSpec          { s.at = nil; return s }
func (s MattermostSpec) withoutPositions() OperatorSpec    { s.at = nil; return s }
func (s ShortCircuitSpec) withoutPositions() OperatorSpec  { s.at = nil; return s }
func (s BranchSpec) withoutPositions() OperatorSpec        { s.at = nil; return s }
func (s TriggerDagRunSpec) withoutPositions() OperatorSpec { s.at = nil; return s }
