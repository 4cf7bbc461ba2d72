// SeqPipeline's clients (seqpipe, the tests) see the model through it: the types a store
// and a run take and give are the model's.
@_exported import PipelineModel
