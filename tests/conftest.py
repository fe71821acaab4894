import os
import sys

# tests import the float64 oracles as `import reference`
sys.path.insert(0, os.path.dirname(__file__))
