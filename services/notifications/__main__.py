from services.notifications.app import definition
from services.runtime.service import run

run(definition)
