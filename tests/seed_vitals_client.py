"""The Python client example of the vitals API seed (`../shared/seeds/002_*.txt`), as written:
only API_KEY, BASE_URL and the device id are ours (given on the command line), and the result
is printed as JSON so that the test can read it."""

import json
import sys

import requests
from datetime import datetime

API_KEY = sys.argv[1]
BASE_URL = sys.argv[2]
DEVICE_ID = sys.argv[3]

def submit_vitals(device_id, vitals_data):
    """Submit vital signs to EHR"""

    headers = {
        "Authorization": f"Bearer {API_KEY}",
        "Content-Type": "application/json"
    }

    payload = {
        "device_id": device_id,
        "timestamp": datetime.utcnow().isoformat() + "Z",
        **vitals_data
    }

    response = requests.post(
        f"{BASE_URL}/api/iot/vitals/",
        headers=headers,
        json=payload
    )

    return response.json()

# Usage
result = submit_vitals(DEVICE_ID, {
    "heart_rate": 75,
    "blood_pressure_systolic": 120,
    "blood_pressure_diastolic": 80,
    "temperature": 98.6,
    "temperature_unit": "F",
    "oxygen_saturation": 98.0
})

print(json.dumps(result))
