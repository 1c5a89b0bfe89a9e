from services.consent.app import definition
from services.runtime.service import run

run(definition)
