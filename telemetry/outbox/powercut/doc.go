// Package powercut is the guest side and the checker of the power-cut
// durability test (issue 15; docs/powercut.md): the robot's outbox and
// result files must survive a power cut at any moment.
//
// scripts/vm/powercut.sh (make test-powercut) compiles this package's
// tests twice: with build tag "powercut_guest" as a static binary that is
// the /init of a qemu VM (TCG) whose virtio disk carries an ext4 file
// system with the agent's state directory, and with build tag "powercut"
// as the host driver (TestPowerCut), which boots that VM again and again
// and kills qemu (SIGKILL: the guest's page cache and every write not yet
// submitted to the disk are gone) at a random moment after the guest
// reported its first committed result.
//
// In the guest, Commit opens the state directory through the agent's own
// delivery path (delivery.OpenWith: outbox checks, recovery of a damaged
// file, Rederive), prints OPEN with the outbox depth, damage and Check,
// then delivers slide reports with gallery crops through
// delivery.Delivery.Deliver (result.json, the stored images, the outbox
// entries) and prints "COMMITTED <result_id>" after each Deliver returned;
// it also acks older results as the fleet would (ACKED). The last boot runs
// Verify, which lists what the outbox holds and which result files read
// back. Tally checks the consoles: every result reported committed is held
// (or was acked), has a sound result.json and its images, every open found
// the outbox sound and Check passing, nothing is corrupt. A last boot, with
// qemu's user networking (virtio-net, vmguest.IfUp), runs Send: the
// agent's sender delivers what the outbox holds to the fleet side on the
// host (fleet.StartLocal: embedded broker, reference receiver whose acks
// the guest verifies with its key) until the outbox is empty; the host
// then checks the fleet's store against Expected (the body and crops
// Commit delivered under each result ID).
//
// Commit, Verify, Send and Tally run on any host too (the package's ordinary
// tests run them on a temporary directory without a VM).
package powercut
