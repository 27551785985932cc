//! A named worker thread that answers jobs in the order they come, each with its job: what
//! the live, features and mistakes workers share. The app sends without waiting and polls
//! the answers once a frame, so no frame ever waits on the model.

use crossbeam::channel::{Receiver, Sender, unbounded};

/// The app's ends of a worker: jobs go in, `(job, result)` pairs come out.
pub(crate) type Ends<J, R> = (Sender<J>, Receiver<(J, R)>);

/// Starts the thread `name` running `run` on every job sent, until the app drops its ends.
pub(crate) fn spawn<J, R>(
    name: &str,
    mut run: impl FnMut(&J) -> R + Send + 'static,
) -> std::io::Result<Ends<J, R>>
where
    J: Send + 'static,
    R: Send + 'static,
{
    let (jobs, job_rx) = unbounded::<J>();
    let (result_tx, results) = unbounded();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            while let Ok(job) = job_rx.recv() {
                let result = run(&job);
                if result_tx.send((job, result)).is_err() {
                    return;
                }
            }
        })?;
    Ok((jobs, results))
}

#[cfg(test)]
mod tests {
    #[test]
    fn answers_every_job_in_order_with_its_job() {
        let mut seen = 0;
        let (jobs, results) = super::spawn("test-worker", move |j: &u32| {
            seen += 1;
            j * 10 + seen
        })
        .unwrap();
        for j in [1, 2, 3] {
            jobs.send(j).unwrap();
        }
        let got: Vec<(u32, u32)> = (0..3).map(|_| results.recv().unwrap()).collect();
        assert_eq!(got, vec![(1, 11), (2, 22), (3, 33)]);
    }
}
