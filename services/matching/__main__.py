from services.matching.app import definition
from services.runtime.service import run

run(definition)
