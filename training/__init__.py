"""What runs offline, never on a worker: training and evaluation of the detectors, thresholds
from error costs, the corpus generator and the media made elsewhere (`training.sources`),
the generators trained here. The serving side (signatures, layouts, handlers, registry) is
`models/`."""
