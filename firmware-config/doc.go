// Package config is the typed configuration of the papscan slide-scanning
// robot and its agent: the hardware (motion axes on Pololu Tic controllers,
// camera and objective, illumination, operator panel, slide loader), the
// agent (robot identity, state directory, MQTT), scanning, classification
// and the simulator.
//
// Configuration is YAML. Parse and Load decode it strictly (unknown keys are
// errors), on top of the sim profile's values, and validate it; Validate
// reports every problem at once with its key path and the allowed range.
// Physical quantities are written with units ("13mm", "0.5µm", "20mm/s",
// "200mm/s^2", "800mA", "15ms") and are held in the types Distance, Speed,
// Acceleration, Current and Duration, which convert to periph's physic
// types and time.Duration.
//
// Shipped profiles are embedded: Profile("sim") (also Default()) is the
// simulated robot, Profile("papscan-r2") the second hardware revision. The
// commented profiles/sim.yaml is the reference documentation of the keys.
//
// The package is a leaf: it imports only the standard library, the YAML
// decoder, periph's conn/physic and the Tic's fact table
// (hal/ticaxis/ticspec, itself a leaf), so the validator checks a Tic
// axis against the same models, step modes, current limits and ranges as
// the driver.
package config
