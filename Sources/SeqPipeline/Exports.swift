import SeqDatabase

// SeqPipeline's clients (seqpipe, the tests) see the layers below through it: the values a
// run takes and gives are the model's, kept by the store, acted on by the runtime.
@_exported import PipelineModel
@_exported import PipelineStore
@_exported import PipelineRuntime
