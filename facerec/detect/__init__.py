"""Face detection (Haar, YuNet, insightface ONNX detectors) and 112x112 alignment."""

from .align import align_face as align_face
from .detectors import Face as Face
from .detectors import central_face as central_face
from .detectors import make_detector as make_detector
from .detectors import check_multi_face_rule as check_multi_face_rule
from .detectors import subject_face as subject_face
