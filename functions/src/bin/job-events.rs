//! `job-events`: the IoT rule on job-execution events: deployment progress (`vitalwire::firmware::job_events`).
vitalwire_functions::lambda_function!(JOB_EVENTS);
